"""A Streamable HTTP MCP server that pings its peer on the reply of ``initialize``, then
asks it for ``roots/list`` there, and answers the ``initialize`` only once both are
answered, for tests/e2e/test_early_pings.py.

Hand-written (the unit tests' ``FakeUpstream`` with ``ping_on_init``, served by a real
Twisted reactor, as ``faulty.py`` is) because no SDK server can do this: the ``mcp``
2.x Python server answers ``initialize`` in its ``ServerRunner``, inline and without a
hook for the server's code, and the TypeScript SDK's ``Server`` answers it in its own
``_oninitialize``.  basic/lifecycle "Initialization" allows it all the same (a server
SHOULD NOT send requests "other than pings and logging" before ``initialized``), and
a server checking that its peer is alive before it commits a session is what aigw
must not leave waiting (basic/utilities/ping: the receiver "MUST respond promptly").
The ``roots/list`` is what basic/lifecycle says a server SHOULD NOT send yet: aigw
refuses it at once (``own_request``) rather than leave it to the server's timeout.

Tools: ``hello``.  The ping's id is ``i<initialize's id>``, the ``roots/list``'s
``i<initialize's id>.1``.

    python -m tests.e2e.upstreams.ping_first --port N   (serves http://127.0.0.1:N/mcp)
"""

from __future__ import annotations

from tests.e2e.upstreams import serve
from tests.unit.gateway.fake_upstream import FakeUpstream


def main() -> None:
    upstream = FakeUpstream(tools=["hello"])
    upstream.ping_on_init = True
    upstream.init_questions = ["ping", "roots/list"]
    serve(upstream)


if __name__ == "__main__":
    main()
