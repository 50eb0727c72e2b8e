"""What is wrong with a config file, said once for every reader of it.

A ``Problem`` names the key path and the line; ``ConfigError`` carries them all,
and ``EX_CONFIG`` is the exit status the daemon and the tools end with on one.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

EX_CONFIG = 78  # sysexits.h: configuration error


@attrs.frozen
class Problem:
    """One thing wrong with a config file."""

    path: str
    line: int | None
    message: str
    #: The file the problem is in when it is not the config file itself (an imported one).
    source: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        elsewhere = f"{self.source}: " if self.source is not None else ""
        return f"{elsewhere}{where}{self.path}: {self.message}"


def located(source: str, problem: Problem) -> str:
    """A problem with the file it is in: ``source`` unless it names its own."""
    return f"{problem}" if problem.source is not None else f"{source}:{problem}"


class ConfigError(Exception):
    """The config file cannot be used; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        super().__init__(source, problems)
        self.source = source
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(located(self.source, p) for p in self.problems)


def in_file_order(problems: Iterable[Problem]) -> list[Problem]:
    """The config file's first, then each imported file's; by line, those without one last;
    a stable sort keeps same-line ones in reading order."""
    return sorted(problems, key=lambda p: (p.source or "", p.line is None, p.line or 0))


def format_problems(err: ConfigError) -> str:
    """A report for humans: how many problems, then one per line, in file order."""
    ordered = in_file_order(err.problems)
    count = len(ordered)
    header = f"{err.source}: {count} problem{'s' if count != 1 else ''}:"
    return "\n".join([header, *(f"  {p}" for p in ordered)])
