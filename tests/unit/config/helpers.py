"""What the config tests share: the smallest valid file, and asserting its problems."""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from aigw.config import ConfigError, Problem, parse_config

#: The example config shipped in the packages.
EXAMPLE = Path(__file__).resolve().parents[3] / "etc" / "aigw" / "aigw.yaml"


def example_block(first: str) -> str:
    """The commented block of ``EXAMPLE`` that starts at the line ``first`` (``"# limits:"``),
    uncommented at its indentation: what a reader would paste into a config."""
    indent = first[: len(first) - len(first.lstrip())]
    lines = EXAMPLE.read_text().splitlines()
    block = []
    for line in lines[lines.index(first) :]:
        if not line.startswith(indent + "#"):
            break
        block.append(indent + line.removeprefix(indent + "# "))
    return "\n".join(block) + "\n"


# Line 1..7; tests append sections from line 8 on.
MINIMAL = """\
listen: tcp:1975:interface=127.0.0.1
public_url: http://127.0.0.1:1975
mcp_path: /mcp
auth: none
backends:
  - name: one
    url: http://127.0.0.1:3001/mcp
"""

AUTH = """\
auth:
  issuer: https://as.example
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[Problem]:
    """The problems parse_config finds in ``text`` (none: a failure)."""
    try:
        parse_config(text, env=env or {})
    except ConfigError as error:
        return error.problems
    raise AssertionError("the config was accepted")


class ConfigTestCase(SynchronousTestCase):
    def only_problem(self, text: str, env: dict[str, str] | None = None) -> Problem:
        found = problems(text, env)
        self.assertEqual(len(found), 1, found)
        return found[0]

    def assertProblem(self, text: str, path: str, line: int | None, fragment: str = "") -> Problem:
        problem = self.only_problem(text)
        self.assertEqual((problem.path, problem.line), (path, line), problem)
        self.assertIn(fragment, problem.message)
        return problem

    def directory(self) -> Path:
        path = Path(self.mktemp())
        path.mkdir(parents=True)
        return path

    def with_auth(self, *lines: str) -> str:
        """MINIMAL with an auth block (issuer on line 5) plus ``lines`` from line 6."""
        head = MINIMAL.replace("auth: none\n", AUTH + "".join(f"  {x}\n" for x in lines))
        return head
