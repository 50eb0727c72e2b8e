"""A hostile or broken config file is a list of ConfigError problems, never a traceback.

load_config promises to raise ConfigError "and nothing else"; these tests feed
it what an attacker controlling an environment variable, a referenced file or
the file itself might, and what a confused operator might.
"""

from __future__ import annotations

import os
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from aigw.config import ConfigError, Problem, load_config, parse_config
from aigw.config.nodes import MAX_FILE_BYTES
from tests.unit.config.helpers import MINIMAL

NESTED = "[" * 5000 + "]" * 5000


class ConfigProblems(SynchronousTestCase):
    def problems(self, text: str, env: dict[str, str] | None = None) -> list[Problem]:
        try:
            parse_config(text, env=env or {})
        except ConfigError as error:
            return error.problems
        self.fail("the config was accepted")

    def file_problems(self, path: str) -> list[Problem]:
        try:
            load_config(path, env={})
        except ConfigError as error:
            return error.problems
        self.fail("the config was accepted")

    def tmp(self, name: str, data: bytes) -> str:
        directory = Path(self.mktemp())
        directory.mkdir()
        path = directory / name
        path.write_bytes(data)
        return str(path)


class HostileTags(ConfigProblems):
    def test_bool_tag_on_non_boolean_is_a_problem(self) -> None:
        """``!!bool foo`` made PyYAML's constructor raise KeyError out of load_config."""
        found = self.problems(MINIMAL + "    max_connections: !!bool foo\n")
        self.assertEqual([(p.path, p.line) for p in found], [("backends[0].max_connections", 8)])

    def test_timestamp_tag_on_non_date_is_a_problem(self) -> None:
        """``!!timestamp foo`` made PyYAML's constructor raise AttributeError."""
        found = self.problems(MINIMAL + "    timeout: !!timestamp foo\n")
        self.assertEqual([(p.path, p.line) for p in found], [("backends[0].timeout", 8)])

    def test_bool_tag_in_inline_headers_is_no_crash(self) -> None:
        """The same KeyError through ``headers`` (as_str_map)."""
        found = self.problems(MINIMAL + "    headers: {X-A: !!bool foo}\n    timeout: 0\n")
        self.assertIn(("backends[0].timeout", 9), [(p.path, p.line) for p in found])

    def test_bool_tag_in_headers_file_is_a_problem(self) -> None:
        """``headers_file`` is read with yaml.safe_load: its KeyError escaped too."""
        path = self.tmp("headers.yaml", b"X-A: !!bool foo\n")
        found = self.problems(MINIMAL + f"    headers_file: {path}\n")
        self.assertEqual([(p.path, p.line) for p in found], [("backends[0].headers_file", 8)])

    def test_python_object_tag_is_never_constructed(self) -> None:
        """``!!python/object`` is a string the safe constructor refuses: a type problem."""
        found = self.problems(MINIMAL + "    max_connections: !!python/object:os.system id\n")
        self.assertEqual([(p.path, p.line) for p in found], [("backends[0].max_connections", 8)])


class HostileShapes(ConfigProblems):
    def test_deep_nesting_is_a_problem_not_recursion_error(self) -> None:
        """Deeply nested flow collections made the composer raise RecursionError."""
        found = self.problems(MINIMAL + f"logging: {NESTED}\n")
        self.assertEqual(len(found), 1, found)
        self.assertEqual(found[0].path, "(root)")
        self.assertIn("nested", found[0].message)

    def test_deep_nesting_in_headers_file_is_a_problem(self) -> None:
        """The same RecursionError through ``headers_file``."""
        path = self.tmp("headers.yaml", NESTED.encode())
        found = self.problems(MINIMAL + f"    headers_file: {path}\n")
        self.assertEqual([(p.path, p.line) for p in found], [("backends[0].headers_file", 8)])

    def test_env_value_is_not_yaml_nor_expanded_again(self) -> None:
        """A ``${VAR}`` value holding YAML or another ``${...}`` stays literal text."""
        text = MINIMAL.replace("http://127.0.0.1:1975", "${U}")
        found = self.problems(text, env={"U": "${V}", "V": "http://x.example"})
        self.assertEqual([(p.path, p.line) for p in found], [("public_url", 2)])


class HostileFiles(ConfigProblems):
    def test_endless_secret_file_is_refused_not_read_for_ever(self) -> None:
        """``shared_secret_file: /dev/zero`` read without bound: a hang and unbounded memory."""
        if not os.path.exists("/dev/zero"):
            self.skipTest("no /dev/zero")
        text = MINIMAL.replace(
            "auth: none", "auth:\n  issuer: https://as.example\n  shared_secret_file: /dev/zero"
        )
        found = self.problems(text)
        self.assertIn("auth.shared_secret_file", [p.path for p in found])
        self.assertTrue(any("larger than" in p.message for p in found), found)

    def test_fifo_nobody_writes_to_is_a_problem_not_a_hang(self) -> None:
        """Opening a FIFO blocks until a writer comes: the daemon hung at start."""
        path = os.path.join(self.mktemp())
        os.makedirs(path)
        fifo = os.path.join(path, "secret")
        os.mkfifo(fifo)
        text = MINIMAL.replace(
            "auth: none", f"auth:\n  issuer: https://as.example\n  shared_secret_file: {fifo}"
        )
        found = self.problems(text)
        self.assertIn("auth.shared_secret_file", [p.path for p in found])

    def test_huge_referenced_file_is_a_problem(self) -> None:
        """A referenced file past the bound is a problem naming the key, not a memory sink."""
        path = self.tmp("headers.yaml", b"#" * (MAX_FILE_BYTES + 1))
        found = self.problems(MINIMAL + f"    headers_file: {path}\n")
        self.assertEqual([(p.path, p.line) for p in found], [("backends[0].headers_file", 8)])
        self.assertIn("larger than", found[0].message)

    def test_huge_config_file_is_a_problem(self) -> None:
        """The config file itself is bounded too."""
        path = self.tmp("aigw.yaml", MINIMAL.encode() + b"#" * MAX_FILE_BYTES)
        found = self.file_problems(path)
        self.assertEqual([p.path for p in found], ["(file)"])
        self.assertIn("larger than", found[0].message)

    def test_config_path_that_is_a_directory_is_a_problem(self) -> None:
        """A directory is ``cannot read``, not IsADirectoryError."""
        directory = self.mktemp()
        os.mkdir(directory)
        found = self.file_problems(directory)
        self.assertEqual([p.path for p in found], ["(file)"])


class ValuesThatCrashedTheDaemonAtStart(ConfigProblems):
    """Accepted by the loader, then a UnicodeEncodeError when the backends were built."""

    def test_header_value_outside_latin1_is_a_problem(self) -> None:
        """RFC 9110 §5.5: a field value is VCHAR, obs-text, SP and HTAB octets; ``€`` is none."""
        found = self.problems(MINIMAL + '    headers: {X-Api-Key: "k€y"}\n')
        self.assertEqual([(p.path, p.line) for p in found], [("backends[0].headers.X-Api-Key", 8)])

    def test_header_value_with_control_character_is_a_problem(self) -> None:
        """RFC 9110 §5.5: control characters (here from ``${VAR}``) are not field-value octets."""
        text = MINIMAL + "    headers:\n      X-Api-Key: ${KEY}\n"
        found = self.problems(text, env={"KEY": "a\x7fb"})
        self.assertEqual([(p.path, p.line) for p in found], [("backends[0].headers.X-Api-Key", 9)])

    def test_header_value_outside_latin1_in_headers_file_is_a_problem(self) -> None:
        """The same rule for ``headers_file`` (JSON escapes reach any code point)."""
        path = self.tmp("headers.json", b'{"X-Api-Key": "\\u20ac", "X-Ctl": "\\u0001"}')
        found = self.problems(MINIMAL + f"    headers_file: {path}\n")
        self.assertEqual([(p.path, p.line) for p in found], [("backends[0].headers_file", 8)] * 2)

    def test_backend_url_outside_ascii_is_a_problem(self) -> None:
        """RFC 3986 §2: a URI is ASCII; Upstream encoded the backend URL as ASCII and crashed."""
        text = MINIMAL.replace("http://127.0.0.1:3001/mcp", "http://b\u00fccher.example/mcp")
        found = self.problems(text)
        self.assertEqual([(p.path, p.line) for p in found], [("backends[0].url", 7)])
        self.assertIn("ASCII", found[0].message)

    def test_accepted_backend_builds_its_upstream(self) -> None:
        """Whatever the loader accepts, the daemon can build: obs-text and HTAB are fine."""
        from twisted.internet.defer import ensureDeferred
        from twisted.internet.testing import MemoryReactorClock

        from aigw.upstream.client import Upstream

        config = parse_config(MINIMAL + '    headers: {X-A: "caf\u00e9\\tok"}\n', env={})
        upstream = Upstream(config.backends[0], MemoryReactorClock())
        fields = self.successResultOf(ensureDeferred(upstream.credentials.headers(None)))
        head = upstream._head(fields, b"POST", None, None, b"application/json", b"{}")
        self.assertTrue(head.startswith(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:3001\r\n"))
        self.assertIn(b"\r\nX-A: caf\xe9\tok\r\n", head)
