"""aigw's answer, for the client, to a backend's request that no client can take.

A backend's requests (sampling, elicitation, roots: MCP 2025-11-25 client/*) expect
an answer; one that cannot reach a client that can answer it is answered by aigw at
once, so that the backend does not wait for its own timeout.  (A ping is never
refused: aigw answers it itself, ``ping.py``.)  Every such
answer is a ``refusal``: ``METHOD_NOT_FOUND`` as a client without the feature answers
(JSON-RPC 2.0 §5.1; 2025-11-25 client/roots "Error Handling": a client that does not
support roots answers -32601), with ``data.reason`` saying which case it is (the
README lists them):

* ``client_capability``: the client did not declare what the request needs
  (``capability_refusal``, ``client_capabilities.py``);
* ``client_revision``: a 2026-07-28 client, which takes no server-to-client requests
  but a parked call's questions;
* ``parked_calls_full``: the call would be parked past ``sessions.max_parked``;
* ``no_client_stream``, ``stream_linger_full``: a lingering stream's request that no
  client stream took;
* ``no_single_call``: a request of a stdio process shared by every user that no single
  call in flight can be said to have made (``upstream/stdio_session.py``).  Such
  requests MUST be made in association with a client request (SEP-2260, 2026-07-28;
  2025-11-25 basic/transports "SHOULD relate to the originating client request"), and
  any open stream of the process may be another user's;
* ``own_request``: a request sent on the reply of one aigw made itself
  (``initialize``, ``server/discover``, a list it fetches), which no client made
  (``gateway/exchange.py`` ``refused_own``).
"""

from __future__ import annotations

from typing import Any

from aigw.protocol import jsonrpc


def refusal(
    request_id: Any,
    method: Any,
    why: str,
    reason: str,
    code: int = jsonrpc.METHOD_NOT_FOUND,
    **data: Any,
) -> jsonrpc.ErrorResponse:
    """The answer to request ``request_id`` (``method``): ``<method>: <why>``, with
    ``data.reason`` and ``data``'s other members."""
    error = jsonrpc.ErrorObject(code, f"{method}: {why}", {"reason": reason, **data})
    return jsonrpc.ErrorResponse(request_id, error)


def capability_refusal(request_id: Any, method: Any, lacking: str) -> jsonrpc.ErrorResponse:
    """``refusal`` of a request whose capability the client did not declare
    (``client_capabilities.missing``): a mode of it it lacks (``elicitation.url``)
    is a bad parameter, a whole capability a method it lacks."""
    code = jsonrpc.INVALID_PARAMS if "." in lacking else jsonrpc.METHOD_NOT_FOUND
    why = f"the client did not declare {lacking}"
    return refusal(request_id, method, why, "client_capability", code, capability=lacking)
