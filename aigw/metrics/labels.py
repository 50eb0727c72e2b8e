"""Bounded label values: what a metric label may say, whatever a client sends.

Every label value a request can influence goes through an allow-list, so a
client cannot create series at will: a series costs memory in aigw and in
Prometheus for as long as it exists.  A value outside the list becomes
``other``.  No label ever holds a principal (user, client, token) or a session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final, Literal, get_args

from twisted.logger import Logger

from aigw.events import Outcome
from aigw.protocol.jsonrpc import reported_text
from aigw.protocol.versions import CLIENT_REQUESTS

#: The label value of everything outside an allow-list.
OTHER: Final = "other"
#: The label value for "not applicable" (no backend, no tool); Prometheus reads an
#: empty label as an absent one.
NONE: Final = ""

#: The MCP request methods a client may send; anything else is counted as ``other``.
METHODS: Final = CLIENT_REQUESTS
#: The one method whose ``name`` is a tool: other names (resource URIs, prompt
#: names) are never a label.
TOOL_CALL: Final = "tools/call"
OUTCOMES: Final[frozenset[str]] = frozenset(get_args(Outcome))

#: The HTTP routes of the client listener, as the ``route`` label says them.
Route = Literal["mcp", "metadata", "healthz", "readyz", "other"]
ROUTES: Final[frozenset[str]] = frozenset(get_args(Route))

#: Whether ``name`` is a tool the configured backend ``backend`` exposes (the gateway
#: wires the catalog's ``lists_tool``: listed by the backend, its selector allowing
#: it); injected, because the catalog lives in the gateway layer.
ToolAllowed = Callable[[str, str], bool]

log = Logger()


class LabelValues:
    """The values one label may take: ``known`` ones, and up to ``limit`` more that
    ``admit`` accepts, learnt as they come; every other value is ``other``.

    A learnt value is a backend's (a tool name it listed) or a client's that matched
    it: one with lone surrogates (valid JSON text) is labelled escaped
    (``jsonrpc.reported_text``), once, when learnt; before, the exposition's UTF-8
    encoding raised at every scrape, and /metrics answered nothing until a restart."""

    def __init__(
        self,
        known: Iterable[str] = (),
        limit: int = 0,
        admit: Callable[[str], bool] | None = None,
    ) -> None:
        self._known = frozenset(known)
        #: value -> its label (``reported_text``)
        self._learnt: dict[str, str] = {}
        self._limit = limit
        self._admit = admit

    def __call__(self, value: str) -> str:
        if value in self._known:
            return value
        label = self._learnt.get(value)
        if label is not None:
            return label
        if len(self._learnt) < self._limit and (self._admit is None or self._admit(value)):
            label = self._learnt[value] = reported_text(value)
            return label
        return OTHER


class RequestLabels:
    """Maps a finished request to its bounded ``(method, backend, tool, outcome)``.

    ``backend`` must be configured; ``tool`` is a label for ``tools/call`` only,
    when ``tool_allowed`` accepts it for that backend, and at most
    ``tools_per_backend`` distinct tools per backend (a backend may list many).
    """

    def __init__(
        self, backends: Iterable[str], tool_allowed: ToolAllowed, tools_per_backend: int = 200
    ) -> None:
        self.backends = LabelValues(backends)
        self.methods = LabelValues(METHODS)
        self.outcomes = LabelValues(OUTCOMES)
        self._tools = {
            backend: LabelValues(limit=tools_per_backend, admit=_guarded(tool_allowed, backend))
            for backend in set(backends)
        }

    def __call__(
        self, method: str, backend: str | None, name: str | None, outcome: str
    ) -> tuple[str, str, str, str]:
        method_label = self.methods(method)
        backend_label = NONE if backend is None else self.backends(backend)
        tool_label = NONE
        if method_label == TOOL_CALL and name is not None:
            tools = self._tools.get(backend_label)
            tool_label = OTHER if tools is None else tools(name)
        return method_label, backend_label, tool_label, self.outcomes(outcome)


def _guarded(tool_allowed: ToolAllowed, backend: str) -> Callable[[str], bool]:
    """``tool_allowed`` for one backend; a predicate that raises admits nothing
    (observers must not raise) and is logged."""

    def admit(name: str) -> bool:
        try:
            return tool_allowed(backend, name)
        except Exception:
            log.failure("tool_allowed raised for backend {backend}", backend=backend)
            return False

    return admit


class HTTPRoutes:
    """Names the route of a client request's path: ``mcp``, ``metadata`` (anything
    under ``/.well-known/``), ``healthz``, ``readyz`` or ``other``."""

    def __init__(self, mcp_path: str) -> None:
        self._exact: dict[bytes, Route] = {
            mcp_path.encode("utf-8"): "mcp",
            b"/healthz": "healthz",
            b"/readyz": "readyz",
        }

    def __call__(self, path: bytes) -> Route:
        route = self._exact.get(path)
        if route is not None:
            return route
        return "metadata" if b"/.well-known/" in path else "other"


def status_label(status: int) -> str:
    """An HTTP status code as a label: one of at most 500 values."""
    return str(status) if 100 <= status <= 599 else OTHER
