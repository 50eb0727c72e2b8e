"""``make security-report``: run the attack tests, write their results into docs/security.md.

Every test of ``ATTACK_TESTS`` whose docstring has an ``expected:`` line is a
row: the docstring's first paragraph is the case, the ``expected:`` paragraph
the answer the test asserts, and "seen" what the run saw: "as expected" when
the test passed, else the failure.  The table replaces what lies between the
two markers in docs/security.md; rows keep the order of the test files, so two
runs with the same results write the same bytes.  Exits non-zero when a test
failed (the table is written all the same, showing it).

    python -m tests.security_report [--check]

``--check`` writes nothing and fails if docs/security.md is not up to date.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "security.md"
BEGIN = "<!-- security-report: begin (written by `make security-report`, do not edit) -->"
END = "<!-- security-report: end -->"
#: The attack tests, each file a section of the table.
ATTACK_TESTS = {
    "tests/unit/auth/test_attacks.py": "Token attacks (issue 16 item 1)",
    "tests/unit/web/test_server.py": "HTTP header bounds and deadlines (issue 16 items 1 and 4)",
    "tests/unit/gateway/test_attacks.py": "Session and routing attacks (issue 16 item 2)",
    "tests/unit/gateway/test_flow.py": "Slow clients pause their backends (issue 16 item 4)",
    "tests/e2e/test_slow_peers.py": "Slow and hostile peers, real processes (issue 16 item 4)",
    "tests/unit/auth/test_faults.py": "The authorization server down (issue 16 item 5)",
    "tests/unit/gateway/test_faults.py": "Clients hanging up mid-call (issue 16 item 5)",
    "tests/unit/config/test_secrets.py": "Secrets at rest (issue 16 item 6)",
}


@attrs.define
class Row:
    path: str
    case: str
    expected: str
    seen: str = "not run"


def _paragraphs(doc: str) -> list[str]:
    return [" ".join(p.split()) for p in doc.split("\n\n") if p.strip()]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


class Collector:
    """A pytest plugin: the case of every attack test, then its outcome."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}

    def pytest_collection_modifyitems(self, items: list[Any]) -> None:
        for item in items:
            doc = inspect.getdoc(getattr(item, "obj", None)) or ""
            paragraphs = _paragraphs(doc)
            expected = [p for p in paragraphs if p.startswith("expected:")]
            if not expected or not paragraphs:
                continue
            path = item.nodeid.split("::", 1)[0]
            answer = expected[0].removeprefix("expected:").strip()
            self.rows[item.nodeid] = Row(path, paragraphs[0], answer)

    def pytest_runtest_logreport(self, report: Any) -> None:
        row = self.rows.get(report.nodeid)
        if row is None:
            return
        if report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            message = crash.message if crash is not None else str(report.longrepr)
            row.seen = "FAILED: " + " ".join(message.split())[:200]
        elif report.when == "call" and report.passed and row.seen == "not run":
            row.seen = "as expected"


def table(rows: list[Row]) -> str:
    lines: list[str] = []
    for path, title in ATTACK_TESTS.items():
        section = [row for row in rows if row.path == path]
        if not section:
            continue
        lines += [f"### {title}", "", f"From `{path}`.", ""]
        lines += ["| # | case | expected | seen |", "|---|---|---|---|"]
        for number, row in enumerate(section, 1):
            cells = (row.case, row.expected, row.seen)
            lines.append(f"| {number} | " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    passed = sum(row.seen == "as expected" for row in rows)
    lines.append(f"{passed} of {len(rows)} cases as expected.")
    return "\n".join(lines)


def with_table(document: str, rendered: str) -> str:
    before, begin, rest = document.partition(BEGIN)
    _, end, after = rest.partition(END)
    if not begin or not end:
        raise SystemExit(f"{DOCUMENT}: the markers {BEGIN!r} and {END!r} are missing")
    return f"{before}{BEGIN}\n\n{rendered}\n\n{END}{after}"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    collector = Collector()
    paths = [str(ROOT / path) for path in ATTACK_TESTS]
    args = [*paths, "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT)]
    status = pytest.main(args, plugins=[collector])
    document = DOCUMENT.read_text(encoding="utf-8")
    updated = with_table(document, table(list(collector.rows.values())))
    if check:
        if updated != document:
            sys.stderr.write(f"{DOCUMENT} is out of date: run make security-report\n")
            return 1
    elif updated != document:
        DOCUMENT.write_text(updated, encoding="utf-8")
        sys.stdout.write(f"wrote {DOCUMENT}\n")
    return int(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
