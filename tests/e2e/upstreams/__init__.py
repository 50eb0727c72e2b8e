"""The upstream servers the end-to-end tests run as processes (``python -m
tests.e2e.upstreams.NAME``); ``serve`` is the command line of the Twisted ones."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twisted.web.resource import Resource


def serve(root: Resource) -> None:
    """Serve ``root`` on 127.0.0.1 ``--port N``, print ``READY http://127.0.0.1:N`` once
    listening (``harness.upstreams.start_twisted_upstream`` waits for it), run until
    stopped."""
    # Imported here: pyserver and stdio_server (SDK servers) import this package too, and
    # must not pay for Twisted's web server or have its reactor installed.
    from twisted.internet import reactor
    from twisted.web.server import Site

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    reactor.listenTCP(args.port, Site(root), interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.callWhenRunning(  # type: ignore[attr-defined]
        lambda: print(f"READY http://127.0.0.1:{args.port}", flush=True)
    )
    reactor.run()  # type: ignore[attr-defined]
    sys.exit(0)
