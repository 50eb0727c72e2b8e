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
    "(JSON-RPC code, message naming the reason), answered without hanging",
]

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
