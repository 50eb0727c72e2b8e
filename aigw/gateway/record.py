"""What the gateway learns about one client request while answering it.

Filled as the request is routed and forwarded, then reported once as
``events.RequestFinished``.  One small object per request: the hot path
(thousands of calls a second) allocates nothing else for it.
"""

from __future__ import annotations

import attrs

from aigw.events import Outcome
from aigw.gateway.flow import Valve
from aigw.tracing.api import NO_SPAN, RequestSpan


@attrs.define(slots=True)
class RequestRecord:
    """One request's method, start time, route and upstream wait, as they become known."""

    method: str
    started: float
    #: Numbered by the gateway, so an access decision and the request's end can be linked.
    request_id: int = 0
    backend: str | None = None
    #: The upstream tool, prompt or resource name the request was routed with.
    name: str | None = None
    #: That name or URI as the client sent it.
    exposed: str | None = None
    #: The request's ``arguments``, kept only when the gateway was built to record them.
    arguments: object = None
    #: Set where the outcome is known better than the answer shows (denied, upstream_error).
    outcome: Outcome | None = None
    upstream_seconds: float = 0.0
    #: The request's span, finished when the request is reported (``aigw/tracing``).
    span: RequestSpan = NO_SPAN
    #: The client's flow control: the readers of the request's upstream replies join it
    #: (``gateway/flow.py``); None when the web layer gave none.
    valve: Valve | None = None
