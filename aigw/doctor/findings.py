"""A finding of ``aigw doctor``, how findings print, and the exit status they give."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import attrs

Verdict = Literal["ok", "warn", "FAIL"]

#: Nothing failed (warnings do not fail), something failed.
EXIT_OK = 0
EXIT_FAILED = 1


@attrs.frozen
class Finding:
    """One check's verdict, what was seen, and for warn and FAIL what to do."""

    verdict: Verdict
    check: str
    seen: str
    fix: str | None = None


def ok(check: str, seen: str) -> Finding:
    return Finding("ok", check, seen)


def warn(check: str, seen: str, fix: str) -> Finding:
    return Finding("warn", check, seen, fix)


def fail(check: str, seen: str, fix: str) -> Finding:
    return Finding("FAIL", check, seen, fix)


def format_finding(finding: Finding) -> str:
    """``ok|warn|FAIL  <check>: <seen>``, then ``  fix: <what to do>`` unless ok."""
    line = f"{finding.verdict:<4}  {finding.check}: {finding.seen}"
    if finding.fix is not None and finding.verdict != "ok":
        line += f"\n  fix: {finding.fix}"
    return line


def format_findings(findings: Iterable[Finding]) -> str:
    return "".join(format_finding(f) + "\n" for f in findings)


def exit_status(findings: Iterable[Finding]) -> int:
    """0 unless some finding is FAIL: warnings say what to look at, they fail nothing."""
    return EXIT_FAILED if any(f.verdict == "FAIL" for f in findings) else EXIT_OK
