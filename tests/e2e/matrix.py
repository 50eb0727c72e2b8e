"""The client x upstream interoperability matrix, filled by the e2e tests and
printed at the end of the run (see ``conftest.pytest_terminal_summary``)."""

from __future__ import annotations

OK = "ok"
FAIL = "FAIL"
#: The revision (or session-less mode) the client or the upstream speaks cannot carry
#: the feature, and the test asserted aigw's precise answer saying so.
REFUSED = "refused"

LEGEND = [
    f"{OK}: works through aigw end to end;  {FAIL}: the test failed;  -: not run",
    f"{REFUSED}: the MCP revision (or session-less mode) the client or the upstream speaks "
    "cannot carry the feature; the test asserted the precise error that says so "
    "(JSON-RPC code, message naming the reason), answered without hanging:",
    "  mcp SDK stateless: a session-less 2025-11-25 server has no back-channel for its own "
    "requests (sampling, elicitation, roots: -32600) and no stream for resource updates "
    "(aigw refuses resources/subscribe, -32600 no_session_stream; a listen leaves the URI "
    "out); its URL-elicitation-required error (-32042) still passes",
    "  log level, 2026-07-28 clients x server-everything: it logs only outside any request "
    "(simulated logging, on its GET stream); 2026-07-28 carries notifications/message only "
    "on the stream of the request that asked (server/utilities/logging); logging/setLevel "
    "is refused by name (-32601, use _meta logLevel)",
    "  roots, 2026-07-28 clients x server-everything: it asks for the client's roots with "
    "a request of its own on its GET stream, outside any request; 2026-07-28 carries a "
    "server's request only as input_required of a client request (basic/patterns/mrtr), "
    "so aigw answers it for the client at once (-32601) and get-roots-list says the "
    "client has no roots",
]

#: The upstreams of the matrix, by backend name in the tests' gateways.
UPSTREAM_LABELS = {
    "everything": "server-everything 2025-11-25",
    "py": "mcp SDK stateful",
    "stateless": "mcp SDK stateless",
    "modern": "mcp SDK 2026-07-28 only",
}

#: The TypeScript SDK client's row label (e2e/ts-client.mjs speaks 2025-11-25).
TS_CLIENT = "ts-sdk 1.x (2025-11-25)"

#: (client, upstream) -> {feature: "ok" | "refused" | "FAIL"}
RESULTS: dict[tuple[str, str], dict[str, str]] = {}


def record(client: str, upstream: str, feature: str, ok: bool | str) -> None:
    """``ok``: True (``ok``), False (``FAIL``) or :data:`REFUSED` (asserted refusal)."""
    if isinstance(ok, str):
        if ok not in (OK, FAIL, REFUSED):
            raise ValueError(f"not a matrix value: {ok!r}")
        value = ok
    else:
        value = OK if ok else FAIL
    RESULTS.setdefault((client, upstream), {})[feature] = value


def render() -> list[str]:
    """One line per client x upstream, features as columns, then the legend."""
    if not RESULTS:
        return []
    features: list[str] = []
    for cells in RESULTS.values():
        features.extend(f for f in cells if f not in features)
    clients = max(len(c) for c, _ in RESULTS)
    upstreams = max(len(u) for _, u in RESULTS)
    width = max(len(f) for f in features)
    head = f"{'client':<{clients}}  {'upstream':<{upstreams}}  " + "  ".join(
        f"{f:<{width}}" for f in features
    )
    lines = [head, "-" * len(head)]
    for (client, upstream), cells in sorted(RESULTS.items()):
        row = "  ".join(f"{cells.get(f, '-'):<{width}}" for f in features)
        lines.append(f"{client:<{clients}}  {upstream:<{upstreams}}  {row}".rstrip())
    return [*lines, "", *LEGEND]
