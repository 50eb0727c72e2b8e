"""2026-07-28 basic/patterns/mrtr: a backend answers that it needs client input first.

A 2026-07-28 client gets the result as it is: the input requests name no
backend (nothing to rewrite), ``requestState`` is opaque to aigw as to the
client ("Client Requirements"), and the client's retry carries both back on a
request routed and authorized like the first.  A session-based client cannot
read this result: aigw asks it on the backend's behalf (``asking.py``).
"""

from __future__ import annotations

from typing import Any

from aigw.upstream.api import UpstreamError

#: 2026-07-28 basic/patterns/mrtr "Supported Requests".
INPUT_REQUIRED_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
#: What an input request may be ("Server Requirements" 2).
INPUT_REQUEST_METHODS = frozenset({"elicitation/create", "sampling/createMessage", "roots/list"})


def is_input_required(result: dict[str, Any]) -> bool:
    return result.get("resultType") == "input_required"


def check_input_required(backend: str, method: str, result: dict[str, Any]) -> None:
    """An ``input_required`` result aigw can pass on or ask about; UpstreamError when
    it is malformed."""
    requests = result.get("inputRequests")
    state = result.get("requestState")
    if (
        method not in INPUT_REQUIRED_METHODS  # "Supported Requests"
        or (requests is None and state is None)  # "Server Requirements" 6
        or (requests is not None and not _valid_input_requests(requests))
        or (state is not None and not isinstance(state, str))
    ):
        raise UpstreamError(backend, "bad_reply", "malformed input_required result")


def _valid_input_requests(requests: Any) -> bool:
    """An InputRequests map: string keys, each value a request aigw lets through."""
    return isinstance(requests, dict) and all(
        isinstance(key, str)
        and isinstance(value, dict)
        and value.get("method") in INPUT_REQUEST_METHODS
        and isinstance(value.get("params", {}), dict)
        for key, value in requests.items()
    )
