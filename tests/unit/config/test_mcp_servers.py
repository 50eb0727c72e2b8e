"""``mcpServers`` files: converted to native backends, each mistake named by key path and line."""

from __future__ import annotations

import json
from pathlib import Path

from aigw.config import Config, ConfigError, Problem, format_problems, load_config
from aigw.config import command_line as cl
from aigw.config.read import ServersFile
from tests.unit.config.helpers import ConfigTestCase

FIXTURES = Path(__file__).parent / "fixtures" / "mcp_servers"


def servers(text: str, source: str = "servers.json") -> ServersFile:
    return ServersFile(source, text, "/nonexistent")


def one(name: str, entry: dict[str, object]) -> str:
    """A document of one server, one key per line (the server on line 3, its keys from 4)."""
    return json.dumps({"mcpServers": {name: entry}}, indent=1)


class ConvertTests(ConfigTestCase):
    def test_a_typical_client_file_converts_to_the_golden_native_yaml(self) -> None:
        """http, streamable-http, no type, stdio with and without type; sse disabled, left out."""
        text = (FIXTURES / "clients.json").read_text()
        converted = cl.convert(servers(text, "clients.json"), cl.Flags(), env={})
        self.assertEqual(converted, (FIXTURES / "clients.yaml").read_text())

    def test_with_an_issuer_auth_is_the_issuer_and_no_warning_is_written(self) -> None:
        text = one("docs", {"url": "http://127.0.0.1:3001/mcp"})
        flags = cl.Flags(
            listen="tcp:8443:interface=0.0.0.0",
            issuer="https://as.example",
            public_url="https://mcp.example",
        )
        converted = cl.convert(servers(text), flags, env={})
        self.assertIn("auth:\n  issuer: https://as.example\n", converted)
        self.assertIn("public_url: https://mcp.example\n", converted)
        self.assertNotIn("auth: none", converted)

    def test_the_converted_yaml_of_http_servers_loads_natively(self) -> None:
        text = one("docs", {"url": "http://127.0.0.1:3001/mcp", "headers": {"X-Key": "k"}})
        path = self.directory() / "aigw.yaml"
        path.write_text(cl.convert(servers(text), cl.Flags(), env={}))
        config = load_config(str(path), env={})
        self.assertEqual(
            [(b.name, b.url, dict(b.headers)) for b in config.backends],
            [("docs", "http://127.0.0.1:3001/mcp", {"X-Key": "k"})],
        )


class ProblemCase(ConfigTestCase):
    """Asserting the problems ``aigw convert`` finds in a document."""

    def problems(self, text: str) -> list[tuple[str, int | None, str]]:
        with self.assertRaises(ConfigError) as caught:
            cl.convert(servers(text), cl.Flags(), env={})
        return [(p.path, p.line, p.message) for p in caught.exception.problems]

    def assertOnly(self, text: str, path: str, line: int | None, *fragments: str) -> None:
        (found,) = self.problems(text)
        self.assertEqual(found[:2], (path, line), found)
        for fragment in fragments:
            self.assertIn(fragment, found[2])


class ProblemTests(ProblemCase):
    def test_json_syntax_error_names_line_and_column(self) -> None:
        text = '{\n  "mcpServers": {\n    "a": {"url": "http://x/",}\n  }\n}\n'
        self.assertOnly(text, "(root)", 3, "JSON syntax error: column 30: Expecting property name")

    def test_nan_is_not_json(self) -> None:
        self.assertOnly('{"mcpServers": {"a": {"timeout": NaN}}}', "(root)", 1, "column 34: NaN")

    def test_the_top_must_be_an_object(self) -> None:
        self.assertOnly("[]", "(root)", 1, 'expected a JSON object {"mcpServers"')

    def test_missing_mcp_servers_suggests_the_spelling(self) -> None:
        text = '{"mcpservers": {}}'
        self.assertOnly(text, "mcpServers", 1, "is 'mcpservers' a misspelling of it?")

    def test_mcp_servers_must_be_an_object(self) -> None:
        self.assertOnly('{"mcpServers": []}', "mcpServers", 1, "expected a mapping")

    def test_a_server_named_twice_is_named(self) -> None:
        text = '{"mcpServers": {\n"a": {"url": "http://x/"},\n"a": {"url": "http://y/"}}}'
        self.assertOnly(text, "mcpServers.a", 3, "given twice (first on line 2)")

    def test_mcp_servers_given_twice_is_named(self) -> None:
        text = '{"mcpServers": {"a": {"url": "http://x/"}},\n"mcpServers": {}}'
        self.assertOnly(text, "mcpServers", 2, "given twice (first on line 1)")

    def test_sse_is_refused_pointing_at_streamable_http(self) -> None:
        text = one("search", {"type": "sse", "url": "http://127.0.0.1:8000/sse"})
        self.assertOnly(text, "mcpServers.search.type", 4, "2024-11-05", "Streamable HTTP")

    def test_an_unknown_type_suggests_the_close_one(self) -> None:
        text = one("a", {"type": "streamable", "url": "http://x/"})
        self.assertOnly(text, "mcpServers.a.type", 4, "did you mean 'streamable-http'")

    def test_unknown_key_is_named(self) -> None:
        text = one("a", {"url": "http://x/", "envFile": ".env"})
        self.assertOnly(text, "mcpServers.a.envFile", 5, "unknown key 'envFile'")

    def test_client_only_keys_are_refused_with_the_native_alternative(self) -> None:
        text = one("a", {"url": "http://x/", "autoApprove": ["search"]})
        self.assertOnly(text, "mcpServers.a.autoApprove", 5, "client setting", "backends[].tools")

    def test_disabled_must_be_a_boolean(self) -> None:
        text = one("a", {"url": "http://x/", "disabled": "yes"})
        self.assertOnly(text, "mcpServers.a.disabled", 5, "expected a boolean")

    def test_a_disabled_server_is_left_out_and_said_so(self) -> None:
        text = json.dumps(
            {"mcpServers": {"a": {"url": "http://x/"}, "b": {"url": "http://y/", "disabled": True}}}
        )
        converted = cl.convert(servers(text), cl.Flags(), env={})
        self.assertIn("#   mcpServers.b: disabled: true, left out\n", converted)
        self.assertNotIn("name: b", converted)

    def test_a_name_that_cannot_prefix_tools_is_refused_with_a_suggestion(self) -> None:
        self.assertOnly(
            one("my.server", {"url": "http://x/"}),
            "mcpServers.my.server",
            3,
            "rename it, e.g. 'my-server'",
        )
        self.assertOnly(
            one("a__b", {"url": "http://x/"}), "mcpServers.a__b", 3, "without '__'", "e.g. 'a_b'"
        )
        self.assertOnly(
            one("x" * 40, {"url": "http://x/"}), f"mcpServers.{'x' * 40}", 3, f"e.g. '{'x' * 32}'"
        )

    def test_url_and_command_together_are_ambiguous(self) -> None:
        text = one("a", {"url": "http://x/", "command": "npx"})
        self.assertOnly(text, "mcpServers.a", 4, "not both")

    def test_neither_url_nor_command(self) -> None:
        self.assertOnly(one("a", {"headers": {}}), "mcpServers.a", 3, "needs url", "or command")

    def test_keys_of_the_other_transport_are_refused(self) -> None:
        text = one("a", {"type": "stdio", "command": "npx", "url": "http://x/"})
        self.assertOnly(text, "mcpServers.a.url", 6, "for HTTP servers", "stdio (type: stdio)")
        text = one("a", {"type": "http", "url": "http://x/", "args": ["-y"]})
        self.assertOnly(text, "mcpServers.a.args", 6, "for stdio servers")

    def test_the_type_needs_its_url_or_command(self) -> None:
        self.assertOnly(one("a", {"type": "http"}), "mcpServers.a.url", 3, "'url' is missing")
        self.assertOnly(one("a", {"type": "stdio"}), "mcpServers.a.command", 3, "missing")

    def test_stdio_values_have_their_types(self) -> None:
        text = one("a", {"command": "npx", "args": "-y server", "env": {"N": 1}, "cwd": ""})
        self.assertEqual(
            [(path, line) for path, line, _ in self.problems(text)],
            [("mcpServers.a.args", 5), ("mcpServers.a.env", 6), ("mcpServers.a.cwd", 9)],
        )

    def test_every_problem_is_reported_at_once(self) -> None:
        text = json.dumps(
            {
                "mcpServers": {
                    "a": {"type": "sse", "url": "u"},
                    "b.c": {"url": "u"},
                    "d": {"command": "x", "nope": 1},
                }
            },
            indent=1,
        )
        self.assertEqual(len(self.problems(text)), 3)


class HostileTests(ProblemCase):
    def test_deep_nesting_is_a_problem_not_recursion_error(self) -> None:
        self.assertOnly('{"mcpServers": ' + "[" * 100_000, "(root)", None, "nested too deeply")

    def test_trailing_data_is_a_syntax_error(self) -> None:
        self.assertOnly('{"mcpServers": {}}\n{}', "(root)", 2, "column 1: Extra data")

    def test_a_byte_order_mark_is_skipped(self) -> None:
        text = "\ufeff" + one("a", {"url": "http://x/"})
        self.assertIn("name: a", cl.convert(servers(text), cl.Flags(), env={}))

    def test_an_infinite_timeout_is_a_problem(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            text = one("a", {"url": "http://x/", "timeout": 1}).replace(": 1\n", ": 1e999\n")
            cl.load(servers(text), cl.Flags(), {})
        (problem,) = caught.exception.problems
        self.assertEqual((problem.path, problem.line), ("mcpServers.a.timeout", 5))

    def test_a_string_stays_a_string_after_substitution(self) -> None:
        """JSON strings are quoted: ``"${T}"`` is text whatever T holds (a duration reads it)."""
        config = cl.load(
            servers(one("a", {"url": "http://x/", "timeout": "${T}"})), cl.Flags(), {"T": "5"}
        )
        self.assertEqual(config.backends[0].timeout, 5.0)


class LoadTests(ConfigTestCase):
    """``aigw run --mcp-config``: the servers read as native backends."""

    def load(
        self, text: str, flags: cl.Flags | None = None, env: dict[str, str] | None = None
    ) -> Config:
        return cl.load(servers(text), flags or cl.Flags(), env=env or {})

    def load_problems(self, text: str, flags: cl.Flags | None = None) -> list[Problem]:
        with self.assertRaises(ConfigError) as caught:
            self.load(text, flags)
        return caught.exception.problems

    def test_http_servers_become_backends(self) -> None:
        text = one(
            "ctx7",
            {
                "type": "http",
                "url": "https://mcp.context7.com/mcp",
                "headers": {"CONTEXT7_API_KEY": "${KEY}"},
                "timeout": 5,
            },
        )
        config = self.load(text, env={"KEY": "secret"})
        (backend,) = config.backends
        self.assertEqual(
            (backend.name, backend.url, dict(backend.headers), backend.timeout),
            ("ctx7", "https://mcp.context7.com/mcp", {"CONTEXT7_API_KEY": "secret"}, 5.0),
        )
        self.assertEqual(config.listen, (cl.DEFAULT_LISTEN,))
        self.assertEqual(config.resource_url, "http://127.0.0.1:1975/mcp")
        self.assertIsNone(config.auth)
        self.assertEqual(config.source, "servers.json")

    def test_native_checks_name_the_json_path_and_line(self) -> None:
        text = one("a", {"url": "ftp://x/", "headers": {"Mcp-Session-Id": "x"}, "timeout": -1})
        found = [(p.path, p.line, p.source) for p in self.load_problems(text)]
        self.assertEqual(
            found,
            [
                ("mcpServers.a.url", 4, None),
                ("mcpServers.a.headers.Mcp-Session-Id", 6, None),
                ("mcpServers.a.timeout", 8, None),
            ],
        )

    def test_an_unset_variable_is_named(self) -> None:
        (problem,) = self.load_problems(one("a", {"url": "http://x/", "headers": {"K": "${NOPE}"}}))
        self.assertEqual((problem.path, problem.line), ("mcpServers.a.headers.K", 6))
        self.assertIn("NOPE is not set", problem.message)

    def test_stdio_servers_become_stdio_backends(self) -> None:
        """A server with a command is a child process speaking MCP over stdio."""
        config = self.load(one("fs", {"type": "stdio", "command": "npx", "args": ["-y", "fs"]}))
        (backend,) = config.backends
        self.assertEqual((backend.name, backend.url), ("fs", None))
        self.assertEqual((backend.command, backend.args), ("npx", ("-y", "fs")))

    def test_no_server_left_is_a_problem(self) -> None:
        (problem,) = self.load_problems(one("a", {"url": "http://x/", "disabled": True}))
        self.assertEqual(problem.path, "mcpServers")

    def test_with_an_issuer_the_audience_is_the_resource_url(self) -> None:
        flags = cl.Flags(listen="tcp:2000:interface=127.0.0.1", issuer="https://as.example")
        config = self.load(one("a", {"url": "http://x/"}), flags)
        assert config.auth is not None
        self.assertEqual(
            (config.auth.issuer, config.auth.audiences),
            ("https://as.example", ("http://127.0.0.1:2000/mcp",)),
        )

    def test_without_an_issuer_only_loopback_listeners_are_allowed(self) -> None:
        for listen in (
            "tcp:1975",
            "tcp:1975:interface=0.0.0.0",
            "tcp6:1975",
            "systemd:domain=INET:index=0",
        ):
            (problem,) = self.load_problems(one("a", {"url": "http://x/"}), cl.Flags(listen))
            self.assertEqual((problem.path, problem.line), ("--listen", None), listen)
            self.assertIn("not loopback-only", problem.message)
        for listen, url in (
            ("tcp:3000:interface=127.0.0.2", "http://127.0.0.2:3000"),
            (r"tcp6:3000:interface=\:\:1", "http://[::1]:3000"),
            ("unix:/run/aigw.sock", "http://localhost"),
        ):
            self.assertEqual(
                self.load(one("a", {"url": "http://x/"}), cl.Flags(listen)).public_url, url
            )

    def test_a_wildcard_listener_with_an_issuer_needs_the_public_url(self) -> None:
        flags = cl.Flags(listen="tcp:1975", issuer="https://as.example")
        (problem,) = self.load_problems(one("a", {"url": "http://x/"}), flags)
        self.assertEqual(problem.path, "--public-url")
        flags = cl.Flags(
            listen="tcp:1975", issuer="https://as.example", public_url="https://gw.example"
        )
        self.assertEqual(
            self.load(one("a", {"url": "http://x/"}), flags).resource_url, "https://gw.example/mcp"
        )

    def test_bad_flags_are_named(self) -> None:
        flags = cl.Flags(listen="nope:1", issuer="ftp://as")
        found = [p.path for p in self.load_problems(one("a", {"url": "http://x/"}), flags)]
        self.assertEqual(found, ["--listen", "--issuer"])

    def test_an_unreadable_file_is_a_file_problem(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            cl.servers_file(path=str(self.directory() / "missing.json"))
        self.assertEqual(caught.exception.problems[0].path, "(file)")


class ImportTests(ConfigTestCase):
    """``import_mcp_servers: FILE`` in the native config."""

    def write(self, directory: Path, native: str, servers_text: str) -> str:
        (directory / "servers.json").write_text(servers_text)
        path = directory / "aigw.yaml"
        path.write_text(native)
        return str(path)

    NATIVE = (
        "listen: tcp:1975:interface=127.0.0.1\n"
        "public_url: http://127.0.0.1:1975\n"
        "mcp_path: /mcp\n"
        "auth: none\n"
        "backends:\n"
        "  - name: one\n"
        "    url: http://127.0.0.1:3001/mcp\n"
        "import_mcp_servers: servers.json\n"
    )

    def test_imported_servers_follow_the_native_backends(self) -> None:
        directory = self.directory().resolve()
        path = self.write(directory, self.NATIVE, one("two", {"url": "http://127.0.0.1:3002/mcp"}))
        config = load_config(path, env={})
        self.assertEqual([b.name for b in config.backends], ["one", "two"])
        self.assertEqual(config.import_mcp_servers, str(directory / "servers.json"))

    def test_backends_may_all_come_from_the_import(self) -> None:
        native = self.NATIVE.replace(
            "backends:\n  - name: one\n    url: http://127.0.0.1:3001/mcp\n", ""
        )
        path = self.write(self.directory(), native, one("two", {"url": "http://127.0.0.1:3002/"}))
        self.assertEqual([b.name for b in load_config(path, env={}).backends], ["two"])

    def test_a_name_clash_names_both_places(self) -> None:
        directory = self.directory().resolve()
        path = self.write(directory, self.NATIVE, one("one", {"url": "http://127.0.0.1:3002/"}))
        with self.assertRaises(ConfigError) as caught:
            load_config(path, env={})
        (problem,) = caught.exception.problems
        self.assertEqual(
            (problem.source, problem.path, problem.line),
            (str(directory / "servers.json"), "mcpServers.one", 3),
        )
        self.assertIn("backends[0] on line 6 of the config file", problem.message)

    def test_problems_of_the_imported_file_name_it(self) -> None:
        directory = self.directory().resolve()
        native = self.NATIVE.replace("auth: none", "auth: {issuer: 3}")
        path = self.write(directory, native, one("two", {"type": "sse", "url": "http://x/sse"}))
        with self.assertRaises(ConfigError) as caught:
            load_config(path, env={})
        report = format_problems(caught.exception)
        self.assertEqual(
            report.splitlines()[1:],
            [
                "  line 4: auth.issuer: expected a string, got an integer `3`",
                f"  {directory / 'servers.json'}: line 4: mcpServers.two.type: type 'sse' is "
                "the HTTP+SSE transport of MCP 2024-11-05, which aigw does not speak: point url "
                "at the server's Streamable HTTP endpoint (often /mcp where the SSE one is /sse) "
                "and write type 'http'",
            ],
        )

    def test_an_unreadable_import_is_reported_at_its_key(self) -> None:
        path = self.directory() / "aigw.yaml"
        path.write_text(self.NATIVE)
        with self.assertRaises(ConfigError) as caught:
            load_config(str(path), env={})
        (problem,) = caught.exception.problems
        self.assertEqual(
            (problem.path, problem.line, problem.source), ("import_mcp_servers", 8, None)
        )
        self.assertIn("cannot read", problem.message)


class ProblemSourceTests(ConfigTestCase):
    def test_a_problem_elsewhere_names_its_file(self) -> None:
        self.assertEqual(
            str(Problem("mcpServers.a", 3, "bad", "s.json")), "s.json: line 3: mcpServers.a: bad"
        )
        self.assertEqual(
            str(ConfigError("aigw.yaml", [Problem("a", 1, "x"), Problem("b", 2, "y", "s.json")])),
            "aigw.yaml:line 1: a: x\ns.json: line 2: b: y",
        )
