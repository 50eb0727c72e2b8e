"""Which JSON-RPC bodies aigw may send to a backend a second time, unasked.

A request can be lost with the connection it went out on before one byte of the
answer came back (a backend closing an idle keep-alive connection just as the
request arrives; ``upstream/connection.py``).  RFC 9112 section 9.3.1 lets a
client retry such a request automatically only when it knows the request is
idempotent, "regardless of the method", or that it was never applied; RFC 9110
section 9.2.2 calls a request idempotent when several identical copies have the
effect on the server of one.  Every MCP message is a POST, so the method says
nothing: the JSON-RPC method does.  (Go's net/http, likewise, retries a POST on a
connection the server closed while idle only when it carries an Idempotency-Key.)

Sent again:

- requests that only read: ``ping``, the ``*/list`` methods, ``resources/read``,
  ``prompts/get``, ``completion/complete``, ``server/discover`` (what RFC 9110
  section 9.2.2 says of safe methods: they are idempotent);
- requests that set a state to a value, as PUT does: ``logging/setLevel``,
  ``resources/subscribe``, ``resources/unsubscribe``;
- ``subscriptions/listen``: a stream of notifications, which ended with its
  connection if the backend ever opened it;
- the notifications aigw forwards that state a fact (``notifications/initialized``,
  ``notifications/cancelled``: MCP basic/utilities/cancellation lets a receiver
  ignore a cancellation of a request it no longer knows, ``notifications/roots/list_changed``);
- a client's response to a backend's request: the backend settles that request
  id once, and a second copy answers nothing.

Never sent again: ``tools/call`` (a tool may act on the world: the backend may have
run it), ``initialize`` (each copy creates an upstream session: RFC 9110 section
9.2.2's POST that creates a resource; aigw re-opens a backend that failed to open
when next it is needed), ``notifications/progress`` (each must report more progress
than the last), any method aigw does not know, and a batch holding one of these.
"""

from __future__ import annotations

import json
from typing import Any

IDEMPOTENT_METHODS = frozenset(
    {
        "ping",
        "server/discover",
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
        "subscriptions/listen",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/roots/list_changed",
    }
)


def replayable(body: bytes) -> bool:
    """Whether every message of a JSON-RPC body (one message or a batch) may be sent
    to the backend again after a lost connection (see the module docstring)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    messages = parsed if isinstance(parsed, list) else [parsed]
    return bool(messages) and all(_replayable_message(message) for message in messages)


def _replayable_message(message: Any) -> bool:
    if not isinstance(message, dict):
        return False
    method = message.get("method")
    if method is None:  # a response: "result" or "error" for one of the backend's ids
        return "id" in message and ("result" in message or "error" in message)
    return method in IDEMPOTENT_METHODS
