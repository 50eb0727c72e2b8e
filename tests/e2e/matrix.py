"""The client x upstream interoperability matrix, filled by the e2e tests and
printed at the end of the run (see ``conftest.pytest_terminal_summary``)."""

from __future__ import annotations

#: (client, upstream) -> {feature: "ok" | "FAIL"}
RESULTS: dict[tuple[str, str], dict[str, str]] = {}


def record(client: str, upstream: str, feature: str, ok: bool) -> None:
    RESULTS.setdefault((client, upstream), {})[feature] = "ok" if ok else "FAIL"


def render() -> list[str]:
    """One line per client x upstream, features as columns."""
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
        lines.append(f"{client:<{clients}}  {upstream:<{upstreams}}  {row}")
    return lines
