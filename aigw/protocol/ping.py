"""aigw's own answer to a backend's ``ping``: an empty result, at once, from aigw.

MCP 2025-11-25 basic/utilities/ping: either party may ping the other to see that it
is still responsive, and "The receiver MUST respond promptly with an empty
response"; a sender may end the connection when none comes.  A backend's peer is
aigw (its MCP client), not the client of whatever call is in flight, so aigw answers
every backend ping itself, wherever it comes (a call's reply stream, a GET or listen
stream, a lingering stream, a shared stdio process outside any call, a parked call,
a 2026-07-28 client's call, one of aigw's own requests) and never relays it:

* the spec asks the receiver, and the answer carries nothing a client could add;
* relaying costs a client round trip, and fails where no client can take a request
  (no stream, a 2026-07-28 client, a shared stdio process): those would otherwise be
  refused with -32601 (``refusals.py``), and a backend that pings for liveness would
  take the refusal or the wait for a dead peer and drop its session;
* SEP-2260 (2026-07-28: a server's requests must belong to a client request) exempts
  ping, so answering it outside any call is what that revision expects too.
"""

from __future__ import annotations

from typing import Any

from aigw.protocol import jsonrpc


def pong(message: Any) -> dict[str, Any] | None:
    """The answer to ``message`` if it is a ping request (a ``ping`` with an id), else
    None: the one place that says which backend messages aigw answers itself."""
    if jsonrpc.is_request(message) and message["method"] == "ping":
        return jsonrpc.result_response(message["id"], {})
    return None
