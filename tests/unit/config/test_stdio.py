"""The keys of a stdio backend (``command`` instead of ``url``), and their problems."""

from __future__ import annotations

from aigw.config import StdioConfig, load_config, parse_config
from tests.unit.config.helpers import MINIMAL, ConfigTestCase

URL_LINE = "    url: http://127.0.0.1:3001/mcp\n"


def stdio(*lines: str) -> str:
    """MINIMAL with backend ``one`` run as a command (line 7) plus ``lines`` from line 8."""
    return MINIMAL.replace(URL_LINE, "    command: mcp-server\n") + "".join(
        f"    {line}\n" for line in lines
    )


class StdioKeysTests(ConfigTestCase):
    def test_command_instead_of_url(self) -> None:
        text = stdio(
            "args: [--stdio, '']",
            "env: {API_KEY: secret, PORT: 8}",
            "stdio: {scope: user, max_processes: 3, idle_timeout: 1m}",
        )
        backend = parse_config(text, env={}).backends[0]
        self.assertEqual(backend.url, None)
        self.assertEqual(backend.command, "mcp-server")
        self.assertEqual(backend.args, ("--stdio", ""))
        self.assertEqual(dict(backend.env), {"API_KEY": "secret", "PORT": "8"})
        self.assertEqual(backend.stdio, StdioConfig("user", 3, 60.0))

    def test_defaults(self) -> None:
        backend = parse_config(stdio(), env={}).backends[0]
        self.assertEqual((backend.args, dict(backend.env), backend.cwd), ((), {}, None))
        self.assertEqual(backend.stdio, StdioConfig("shared", 100, 600.0))

    def test_cwd_is_relative_to_the_config_and_must_exist(self) -> None:
        base = self.directory().resolve()
        (base / "work").mkdir()
        (base / "aigw.yaml").write_text(stdio("cwd: work"))
        config = load_config(str(base / "aigw.yaml"), env={})
        self.assertEqual(config.backends[0].cwd, str(base / "work"))
        problem = self.only_problem(stdio("cwd: /nonexistent/dir"))
        self.assertEqual((problem.path, problem.line), ("backends[0].cwd", 8))
        self.assertIn("not a directory", problem.message)

    def test_neither_url_nor_command(self) -> None:
        text = MINIMAL.replace(URL_LINE, "    timeout: 5s\n")
        self.assertProblem(text, "backends[0].url", 6, "or 'command'")

    def test_url_and_command(self) -> None:
        text = MINIMAL + "    command: mcp-server\n"
        self.assertProblem(text, "backends[0].command", 8, "not both")

    def test_http_keys_do_not_go_with_command(self) -> None:
        text = stdio("max_connections: 4")
        self.assertProblem(text, "backends[0].max_connections", 8, "does not go with 'command'")
        text = stdio("keep_alive_timeout: 2s")
        self.assertProblem(text, "backends[0].keep_alive_timeout", 8, "does not go with 'command'")

    def test_upstream_credentials_do_not_go_with_command(self) -> None:
        """backends[].auth sets HTTP headers; a stdio child gets its secrets through env."""
        text = stdio("auth: {claims_to_headers: {sub: X-Forwarded-User}}")
        self.assertProblem(text, "backends[0].auth", 8, "does not go with 'command'")

    def test_stdio_keys_do_not_go_with_url(self) -> None:
        text = MINIMAL + "    args: [x]\n"
        self.assertProblem(text, "backends[0].args", 8, "does not go with 'url'")

    def test_unknown_scope(self) -> None:
        self.assertProblem(stdio("stdio: {scope: team}"), "backends[0].stdio.scope", 8, "user")

    def test_env_names_must_be_usable(self) -> None:
        self.assertProblem(stdio("env: {'A=B': x}"), "backends[0].env.A=B", 8, "not a usable")

    def test_args_must_be_strings(self) -> None:
        self.assertProblem(stdio("args: [[nested]]"), "backends[0].args[0]", 8, "")
