"""Reading the config: every kind of mistake is reported with its key path and line."""

from __future__ import annotations

import os
import re

from twisted.trial.unittest import SynchronousTestCase

from aigw.config import (
    Config,
    ConfigError,
    Problem,
    ServerConfig,
    StdioConfig,
    format_problems,
    load_config,
    parse_config,
)
from aigw.config.model import DEFAULT_ALGORITHMS
from aigw.upstream.headers import RESERVED_HEADERS
from tests.unit.config.helpers import EXAMPLE, MINIMAL, ConfigTestCase, example_block, problems


class FileLevelTests(ConfigTestCase):
    def test_yaml_syntax_error_names_its_line(self) -> None:
        self.assertProblem(MINIMAL + "logging: {format: text\n", "(root)", 9, "YAML syntax")

    def test_missing_file_is_reported_without_line(self) -> None:
        missing = os.path.join(self.mktemp(), "aigw.yaml")
        with self.assertRaises(ConfigError) as caught:
            load_config(missing)
        self.assertEqual(
            caught.exception.problems,
            [Problem("(file)", None, caught.exception.problems[0].message)],
        )
        self.assertIn("No such file", caught.exception.problems[0].message)

    def test_non_utf8_file_is_a_file_problem(self) -> None:
        path = self.directory() / "aigw.yaml"
        path.write_bytes(b"listen: \xff\n")
        with self.assertRaises(ConfigError) as caught:
            load_config(str(path))
        self.assertEqual(caught.exception.problems[0].path, "(file)")

    def test_top_level_must_be_a_mapping(self) -> None:
        self.assertProblem("- listen\n- backends\n", "(root)", 1, "expected a mapping")

    def test_empty_file_is_a_problem(self) -> None:
        self.assertProblem("# nothing\n", "(root)", None, "empty")

    def test_duplicate_key_is_a_problem(self) -> None:
        self.assertProblem(MINIMAL + "mcp_path: /other\n", "mcp_path", 8, "first on line 3")


class KeyTests(ConfigTestCase):
    def test_unknown_key_suggests_the_close_one(self) -> None:
        problem = self.assertProblem(MINIMAL + "loging: {level: info}\n", "loging", 8)
        self.assertIn("did you mean 'logging'", problem.message)

    def test_unknown_key_inside_a_backend(self) -> None:
        text = MINIMAL + "    timout: 5s\n"
        self.assertProblem(text, "backends[0].timout", 8, "did you mean 'timeout'")

    def test_missing_required_key_points_at_its_parent_mapping(self) -> None:
        text = MINIMAL.replace("public_url: http://127.0.0.1:1975\n", "")
        self.assertProblem(text, "public_url", 1, "missing")

    def test_missing_backend_url_points_at_the_backend(self) -> None:
        text = MINIMAL.replace("    url: http://127.0.0.1:3001/mcp\n", "    timeout: 5s\n")
        self.assertProblem(text, "backends[0].url", 6, "missing")

    def test_missing_auth_is_a_problem(self) -> None:
        self.assertProblem(MINIMAL.replace("auth: none\n", ""), "auth", 1, "auth: none")


class TypeTests(ConfigTestCase):
    def test_yaml_boolean_where_a_string_is_expected_gets_a_hint(self) -> None:
        text = self.with_auth("resource_name: yes")
        problem = self.assertProblem(text, "auth.resource_name", 6, "boolean")
        self.assertIn("quote it", problem.message)

    def test_on_is_a_boolean_too(self) -> None:
        self.assertProblem(MINIMAL + "logging: {level: on}\n", "logging.level", 8, "boolean")

    def test_mapping_where_a_list_is_expected(self) -> None:
        text = MINIMAL.replace("listen: tcp:1975:interface=127.0.0.1", "listen: {tcp: 1975}")
        self.assertProblem(text, "listen", 1, "expected a list")

    def test_string_where_an_integer_is_expected(self) -> None:
        self.assertProblem(
            MINIMAL + "    max_connections: many\n", "backends[0].max_connections", 8, "integer"
        )

    def test_string_where_a_boolean_is_expected(self) -> None:
        self.assertProblem(
            MINIMAL + "logging:\n  access_log: maybe\n", "logging.access_log", 9, "boolean"
        )

    def test_integer_below_its_minimum(self) -> None:
        self.assertProblem(
            MINIMAL + "server: {max_headers: 0}\n", "server.max_headers", 8, "at least 1"
        )

    def test_auth_must_be_a_mapping_or_none(self) -> None:
        self.assertProblem(MINIMAL.replace("auth: none", "auth: off"), "auth", 4, "none")


class URLTests(ConfigTestCase):
    def test_public_url_must_be_http_or_https(self) -> None:
        text = MINIMAL.replace("http://127.0.0.1:1975", "ftp://127.0.0.1:1975")
        self.assertProblem(text, "public_url", 2, "http")

    def test_public_url_must_not_have_a_query(self) -> None:
        text = MINIMAL.replace("http://127.0.0.1:1975", "http://127.0.0.1:1975/?a=1")
        self.assertProblem(text, "public_url", 2, "query")

    def test_backend_url_needs_a_host(self) -> None:
        text = MINIMAL.replace("http://127.0.0.1:3001/mcp", "http:///mcp")
        self.assertProblem(text, "backends[0].url", 7, "host")

    def test_backend_url_must_not_have_a_fragment(self) -> None:
        text = MINIMAL.replace("http://127.0.0.1:3001/mcp", "http://h/mcp#x")
        self.assertProblem(text, "backends[0].url", 7, "fragment")

    def test_backend_url_with_a_space(self) -> None:
        text = MINIMAL.replace("http://127.0.0.1:3001/mcp", "'http://h/a b'")
        self.assertProblem(text, "backends[0].url", 7, "spaces")

    def test_backend_url_with_a_bad_port(self) -> None:
        text = MINIMAL.replace("http://127.0.0.1:3001/mcp", "http://h:99999/mcp")
        self.assertProblem(text, "backends[0].url", 7, "valid URL")

    def test_issuer_must_be_absolute(self) -> None:
        text = self.with_auth().replace("https://as.example", "as.example")
        self.assertProblem(text, "auth.issuer", 5, "http")

    def test_mcp_path_must_start_with_a_slash(self) -> None:
        self.assertProblem(MINIMAL.replace("mcp_path: /mcp", "mcp_path: mcp"), "mcp_path", 3, "/")

    def test_allowed_origin_has_no_path(self) -> None:
        text = MINIMAL + "allowed_origins: [http://a.example/x]\n"
        self.assertProblem(text, "allowed_origins[0]", 8, "no path")


class DurationAndSizeTests(ConfigTestCase):
    def test_durations_accept_units_and_plain_seconds(self) -> None:
        text = MINIMAL + (
            "    timeout: 250ms\n    connect_timeout: 5m\n"
            "server: {idle_timeout: 1h, shutdown_timeout: 2.5}\n"
            "sessions: {ttl: 1d}\n"
        )
        config = parse_config(text, env={})
        self.assertEqual(config.backends[0].timeout, 0.25)
        self.assertEqual(config.backends[0].connect_timeout, 300.0)
        self.assertEqual(
            (config.server.idle_timeout, config.server.shutdown_timeout), (3600.0, 2.5)
        )
        self.assertEqual(config.sessions.ttl, 86400.0)

    def test_stream_linger_is_a_duration_5s_by_default_and_0_allowed(self) -> None:
        self.assertEqual(parse_config(MINIMAL, env={}).backends[0].stream_linger, 5.0)
        config = parse_config(MINIMAL + "    stream_linger: 0\n", env={})
        self.assertEqual(config.backends[0].stream_linger, 0.0)
        self.assertProblem(
            MINIMAL + "    stream_linger: soon\n", "backends[0].stream_linger", 8, "duration"
        )

    def test_keep_alive_timeout_is_a_duration_above_zero_and_4s_by_default(self) -> None:
        self.assertEqual(parse_config(MINIMAL, env={}).backends[0].keep_alive_timeout, 4.0)
        config = parse_config(MINIMAL + "    keep_alive_timeout: 1500ms\n", env={})
        self.assertEqual(config.backends[0].keep_alive_timeout, 1.5)
        self.assertProblem(
            MINIMAL + "    keep_alive_timeout: 0\n",
            "backends[0].keep_alive_timeout",
            8,
            "more than 0",
        )

    def test_negative_duration_is_rejected(self) -> None:
        self.assertProblem(MINIMAL + "    timeout: -3\n", "backends[0].timeout", 8, "more than 0")

    def test_duration_with_unknown_unit_is_rejected(self) -> None:
        self.assertProblem(MINIMAL + "    timeout: 30x\n", "backends[0].timeout", 8, "'30x'")

    def test_huge_duration_is_rejected_not_crashed(self) -> None:
        text = MINIMAL + f"    timeout: {10**400}\n"
        self.assertProblem(text, "backends[0].timeout", 8, "duration")

    def test_duration_that_is_not_a_number_is_rejected(self) -> None:
        self.assertProblem(
            MINIMAL + "server: {idle_timeout: abc}\n", "server.idle_timeout", 8, "duration"
        )

    def test_sizes_accept_binary_and_decimal_units(self) -> None:
        text = MINIMAL + "server: {max_body_bytes: 4MiB, max_header_bytes: 512KiB}\n"
        server = parse_config(text, env={}).server
        self.assertEqual((server.max_body_bytes, server.max_header_bytes), (4 << 20, 512 << 10))
        text = MINIMAL + "server: {max_body_bytes: 1MB, max_header_bytes: 100}\n"
        server = parse_config(text, env={}).server
        self.assertEqual((server.max_body_bytes, server.max_header_bytes), (1_000_000, 100))

    def test_bad_size_is_rejected(self) -> None:
        self.assertProblem(
            MINIMAL + "server:\n  max_body_bytes: 4XB\n", "server.max_body_bytes", 9, "size"
        )


class ListenTests(ConfigTestCase):
    def test_single_listen_string_is_accepted(self) -> None:
        self.assertEqual(parse_config(MINIMAL, env={}).listen, ("tcp:1975:interface=127.0.0.1",))

    def test_invalid_endpoint_is_reported_without_binding(self) -> None:
        text = MINIMAL.replace(
            "listen: tcp:1975:interface=127.0.0.1", "listen: [tcp:1975, tcp:abc]"
        )
        self.assertProblem(text, "listen[1]", 1, "invalid endpoint")

    def test_unknown_endpoint_type(self) -> None:
        text = MINIMAL.replace("tcp:1975:interface=127.0.0.1", "tpc:1975")
        self.assertProblem(text, "listen", 1, "Unknown endpoint type")

    def test_empty_listen_is_rejected(self) -> None:
        text = MINIMAL.replace("listen: tcp:1975:interface=127.0.0.1", "listen: []")
        self.assertProblem(text, "listen", 1, "at least one")

    def test_systemd_endpoint_is_accepted_outside_systemd(self) -> None:
        text = MINIMAL.replace("tcp:1975:interface=127.0.0.1", "systemd:domain=INET:index=0")
        self.assertEqual(parse_config(text, env={}).listen, ("systemd:domain=INET:index=0",))


class BackendTests(ConfigTestCase):
    def test_invalid_regex_names_its_index_and_line(self) -> None:
        text = (
            MINIMAL
            + "    tools:\n      include_regex:\n        - ^a\n        - b.*\n        - '(c'\n"
        )
        self.assertProblem(text, "backends[0].tools.include_regex[2]", 12, "regular expression")

    def test_regexes_are_compiled(self) -> None:
        text = MINIMAL + "    tools: {exclude_regex: ['^del']}\n"
        (pattern,) = parse_config(text, env={}).backends[0].tools.exclude_regex
        self.assertIsInstance(pattern, re.Pattern)
        self.assertTrue(pattern.match("delete"))

    def test_duplicate_backend_names_are_rejected(self) -> None:
        text = MINIMAL + "  - name: one\n    url: http://h/\n"
        self.assertProblem(text, "backends[1].name", 8, "first on line 6")

    def test_backend_name_must_match_the_pattern(self) -> None:
        text = MINIMAL.replace("name: one", "name: -one")
        self.assertProblem(text, "backends[0].name", 6, "not a valid backend name")

    def test_backend_name_must_not_contain_the_separator(self) -> None:
        text = MINIMAL.replace("name: one", "name: my__one")
        self.assertProblem(text, "backends[0].name", 6, "split at the first '__'")

    def test_at_least_one_backend_is_required(self) -> None:
        text = MINIMAL.split("backends:")[0] + "backends: []\n"
        self.assertProblem(text, "backends", 5, "at least one")

    def test_headers_are_a_string_mapping(self) -> None:
        text = MINIMAL + "    headers: {X-Key: abc, X-Num: 3}\n"
        self.assertEqual(
            parse_config(text, env={}).backends[0].headers, {"X-Key": "abc", "X-Num": "3"}
        )

    def test_header_that_aigw_sets_cannot_be_configured(self) -> None:
        text = MINIMAL + "    headers:\n      Content-Length: '5'\n"
        self.assertProblem(text, "backends[0].headers.Content-Length", 9, "set by aigw")

    def test_header_the_upstream_client_sets_cannot_be_configured(self) -> None:
        """A configured ``Accept`` passed validation and went upstream twice."""
        for name in ("Accept", "Mcp-Session-Id", "mcp-protocol-version", "Last-Event-ID"):
            text = MINIMAL + f"    headers:\n      {name}: x\n"
            self.assertProblem(text, f"backends[0].headers.{name}", 9, f"{name} is set by aigw")

    def test_no_reserved_header_can_be_configured(self) -> None:
        for name in sorted(RESERVED_HEADERS):
            text = MINIMAL + f"    headers: {{{name}: x}}\n"
            self.assertProblem(text, f"backends[0].headers.{name}", 8, "set by aigw")

    def test_mcp_param_headers_cannot_be_configured(self) -> None:
        """``Mcp-Param-{Name}`` headers mirror each call's arguments (2026-07-28)."""
        text = MINIMAL + "    headers: {mcp-param-x: y}\n"
        self.assertProblem(text, "backends[0].headers.mcp-param-x", 8, "set by aigw")

    def test_header_name_must_be_a_token(self) -> None:
        text = MINIMAL + "    headers: {'X Key': abc}\n"
        self.assertProblem(text, "backends[0].headers.X Key", 8, "not a valid header name")

    def test_scope_with_a_space_is_rejected(self) -> None:
        text = MINIMAL + "    required_scopes: ['mcp:tools admin']\n"
        self.assertProblem(text, "backends[0].required_scopes[0]", 8, "not a scope")

    def test_yaml_merge_keys_are_honoured(self) -> None:
        text = MINIMAL + "  - <<: {url: 'http://h/', timeout: 5s}\n    name: two\n"
        second = parse_config(text, env={}).backends[1]
        self.assertEqual((second.name, second.url, second.timeout), ("two", "http://h/", 5.0))


class AccessTests(ConfigTestCase):
    def test_access_default_must_be_allow_or_deny(self) -> None:
        self.assertProblem(
            MINIMAL + "access: {default: permit}\n", "access.default", 8, "'allow' or 'deny'"
        )

    def test_rule_effect_must_be_allow_or_deny(self) -> None:
        text = MINIMAL + "access:\n  rules:\n    - {effect: allow}\n    - {effect: alow}\n"
        self.assertProblem(text, "access.rules[1].effect", 11, "did you mean 'allow'")

    def test_rule_effect_is_required(self) -> None:
        text = MINIMAL + "access:\n  rules:\n    - {tools: ['*']}\n"
        self.assertProblem(text, "access.rules[0].effect", 10, "missing")

    def test_rules_are_read(self) -> None:
        text = MINIMAL + (
            "access:\n  default: deny\n  rules:\n"
            "    - {effect: allow, scopes: [a], claims: {group: admins}, tools: ['x*']}\n"
        )
        access = parse_config(text, env={}).access
        self.assertEqual(access.default, "deny")
        self.assertEqual(access.rules[0].claims, {"group": "admins"})
        self.assertEqual(access.rules[0].effect, "allow")

    def test_richer_rules_are_read(self) -> None:
        text = MINIMAL + (
            "access:\n  rules:\n"
            "    - effect: allow\n"
            "      claims: {realm_access.roles: admin}\n"
            "      methods: [tools/list, 'resources/*']\n"
            "      prompts: ['summar*']\n"
            "      resources: ['file:///docs/*']\n"
        )
        (rule,) = parse_config(text, env={}).access.rules
        self.assertEqual(rule.claims, {"realm_access.roles": "admin"})
        self.assertEqual(rule.methods, ("tools/list", "resources/*"))
        self.assertEqual((rule.prompts, rule.resources), (("summar*",), ("file:///docs/*",)))

    def test_a_method_naming_nothing_decided_is_a_problem(self) -> None:
        text = MINIMAL + "access:\n  rules:\n    - {effect: deny, methods: [tool/call]}\n"
        self.assertProblem(text, "access.rules[0].methods[0]", 10, "did you mean 'tools/call'")
        text = MINIMAL + "access:\n  rules:\n    - {effect: deny, methods: [ping]}\n"
        self.assertProblem(text, "access.rules[0].methods[0]", 10, "names no method")

    def test_screen_tools_modes(self) -> None:
        for given, mode in (("off", "off"), ("warn", "warn"), ("block", "block")):
            text = MINIMAL + f"    screen_tools: {given}\n"
            self.assertEqual(parse_config(text, env={}).backends[0].screen_tools, mode)
        self.assertEqual(parse_config(MINIMAL, env={}).backends[0].screen_tools, "off")
        text = MINIMAL + "    screen_tools: blok\n"
        self.assertProblem(text, "backends[0].screen_tools", 8, "did you mean 'block'")
        self.assertProblem(MINIMAL + "    screen_tools: on\n", "backends[0].screen_tools", 8)


class AuthTests(ConfigTestCase):
    def test_audiences_default_to_the_resource_url(self) -> None:
        text = self.with_auth().replace("1975\n", "1975/\n")
        config = parse_config(text, env={})
        assert config.auth is not None
        self.assertEqual(config.auth.audiences, ("http://127.0.0.1:1975/mcp",))
        self.assertEqual(config.auth.algorithms, DEFAULT_ALGORITHMS)

    def test_auth_none_means_no_auth(self) -> None:
        self.assertIsNone(parse_config(MINIMAL, env={}).auth)

    def test_unknown_algorithm_is_rejected(self) -> None:
        self.assertProblem(
            self.with_auth("algorithms: [RS256, RS257]"), "auth.algorithms[1]", 6, "RS256"
        )

    def test_algorithm_none_is_always_rejected(self) -> None:
        self.assertProblem(self.with_auth("algorithms: [none]"), "auth.algorithms[0]", 6, "never")

    def test_hs_algorithm_needs_a_shared_secret(self) -> None:
        self.assertProblem(
            self.with_auth("algorithms: [HS256]"), "auth.algorithms[0]", 6, "shared_secret"
        )

    def test_hs_algorithm_with_a_shared_secret_file(self) -> None:
        directory = self.directory()
        (directory / "hs.key").write_bytes(b"s3cret-s3cret\n")
        path = directory / "aigw.yaml"
        path.write_text(self.with_auth("algorithms: [HS256]", "shared_secret_file: hs.key"))
        auth = load_config(str(path), env={}).auth
        assert auth is not None
        self.assertEqual((auth.algorithms, auth.shared_secret), (("HS256",), b"s3cret-s3cret"))

    def test_both_secret_and_secret_file_is_a_problem(self) -> None:
        text = self.with_auth("shared_secret: a", "shared_secret_file: b")
        self.assertProblem(text, "auth.shared_secret_file", 7, "not both")

    def test_unreadable_secret_file_is_a_problem(self) -> None:
        missing = os.path.join(self.mktemp(), "nope")
        text = self.with_auth(
            "introspection:",
            "  endpoint: https://as.example/introspect",
            "  client_id: gw",
            f"  client_secret_file: {missing}",
        )
        self.assertProblem(text, "auth.introspection.client_secret_file", 9, "cannot read")

    def test_introspection_needs_a_client_secret(self) -> None:
        text = self.with_auth(
            "introspection:", "  endpoint: https://as.example/i", "  client_id: gw"
        )
        self.assertProblem(text, "auth.introspection.client_secret", 7, "missing")

    def test_browser_login_names_its_client(self) -> None:
        self.assertProblem(
            self.with_auth("browser_login: {client_secret: s}"),
            "auth.browser_login.client_id",
            6,
            "missing",
        )
        auth = parse_config(
            self.with_auth("browser_login: {client_id: gw-login, client_secret: s}"), env={}
        ).auth
        assert auth is not None
        assert auth.browser_login is not None
        self.assertEqual(
            (auth.browser_login.client_id, auth.browser_login.client_secret), ("gw-login", "s")
        )

    def test_every_auth_field_is_read(self) -> None:
        text = self.with_auth(
            "audiences: [a, b]",
            "leeway: 0",
            "jwks_max_bytes: 64KiB",
            "jwks_refresh_interval: 10m",
            "relay_authorization_server_metadata: false",
            "introspection: {endpoint: 'https://as.example/i', client_id: gw, client_secret: s}",
        )
        auth = parse_config(text, env={}).auth
        assert auth is not None
        assert auth.introspection is not None
        self.assertEqual(auth.audiences, ("a", "b"))
        self.assertEqual(
            (auth.leeway, auth.jwks_max_bytes, auth.jwks_refresh_interval), (0.0, 65536, 600.0)
        )
        self.assertFalse(auth.relay_authorization_server_metadata)
        self.assertEqual(auth.introspection.client_secret, "s")


class SessionTests(ConfigTestCase):
    def test_session_secret_must_be_32_bytes(self) -> None:
        directory = self.directory()
        (directory / "session.key").write_bytes(b"x" * 31)
        path = directory / "aigw.yaml"
        path.write_text(MINIMAL + "sessions:\n  secret_file: session.key\n")
        with self.assertRaises(ConfigError) as caught:
            load_config(str(path), env={})
        (problem,) = caught.exception.problems
        self.assertEqual((problem.path, problem.line), ("sessions.secret_file", 9))
        self.assertIn("at least 32", problem.message)

    def test_session_secrets_are_raw_bytes_relative_to_the_config(self) -> None:
        directory = self.directory()
        (directory / "new.key").write_bytes(b"n" * 32 + b"\n")
        (directory / "old.key").write_bytes(b"o" * 40)
        path = directory / "aigw.yaml"
        path.write_text(
            MINIMAL + "sessions:\n  secret_file: new.key\n  old_secret_files: [old.key]\n"
        )
        sessions = load_config(str(path), env={}).sessions
        self.assertEqual(sessions.secret, b"n" * 32 + b"\n")
        self.assertEqual(sessions.old_secrets, (b"o" * 40,))

    def test_unreadable_old_secret_file_names_its_index(self) -> None:
        text = MINIMAL + "sessions:\n  old_secret_files:\n    - /nonexistent/aigw.key\n"
        self.assertProblem(text, "sessions.old_secret_files[0]", 10, "cannot read")


class EnvironmentTests(ConfigTestCase):
    def test_variables_are_substituted(self) -> None:
        text = MINIMAL + "    headers: {Authorization: 'Bearer ${TOKEN}'}\n"
        config = parse_config(text, env={"TOKEN": "t0k"})
        self.assertEqual(config.backends[0].headers, {"Authorization": "Bearer t0k"})

    def test_default_is_used_when_unset(self) -> None:
        text = MINIMAL.replace("/mcp\n", "${MCP_PATH:-/gateway}\n", 1)
        self.assertEqual(parse_config(text, env={}).mcp_path, "/gateway")

    def test_unset_variable_without_default_is_a_problem(self) -> None:
        text = MINIMAL + "    headers: {Authorization: 'Bearer ${TOKEN}'}\n"
        problem = self.assertProblem(text, "backends[0].headers.Authorization", 8, "TOKEN")
        self.assertIn("not set", problem.message)

    def test_double_dollar_escapes_a_reference(self) -> None:
        text = MINIMAL + "    headers: {X-Literal: '$${TOKEN}'}\n"
        self.assertEqual(parse_config(text, env={}).backends[0].headers, {"X-Literal": "${TOKEN}"})

    def test_unclosed_reference_is_a_problem(self) -> None:
        text = MINIMAL + "    headers: {X-Key: '${TOKEN'}\n"
        self.assertProblem(text, "backends[0].headers.X-Key", 8, "unclosed")

    def test_default_also_replaces_an_empty_variable(self) -> None:
        text = MINIMAL + "    headers: {X-Key: '${KEY:-none}'}\n"
        headers = parse_config(text, env={"KEY": ""}).backends[0].headers
        self.assertEqual(headers, {"X-Key": "none"})

    def test_unquoted_reference_can_be_an_integer(self) -> None:
        text = MINIMAL + "    max_connections: ${CONNS:-8}\n"
        self.assertEqual(parse_config(text, env={}).backends[0].max_connections, 8)


class FileTwinTests(ConfigTestCase):
    def test_headers_file_is_a_mapping_file(self) -> None:
        directory = self.directory()
        (directory / "headers.json").write_text('{"X-Api-Key": "k"}')
        path = directory / "aigw.yaml"
        path.write_text(MINIMAL + "    headers_file: headers.json\n")
        self.assertEqual(load_config(str(path), env={}).backends[0].headers, {"X-Api-Key": "k"})

    def test_headers_file_cannot_hold_a_header_aigw_sets(self) -> None:
        directory = self.directory()
        (directory / "headers.yaml").write_text("X-Api-Key: k\nAccept: text/html\n")
        path = directory / "aigw.yaml"
        path.write_text(MINIMAL + "    headers_file: headers.yaml\n")
        with self.assertRaises(ConfigError) as caught:
            load_config(str(path), env={})
        (problem,) = caught.exception.problems
        self.assertEqual((problem.path, problem.line), ("backends[0].headers_file", 8))
        self.assertIn("Accept is set by aigw", problem.message)

    def test_headers_file_that_is_not_a_mapping(self) -> None:
        directory = self.directory()
        (directory / "headers.yaml").write_text("- a\n- b\n")
        path = directory / "aigw.yaml"
        path.write_text(MINIMAL + "    headers_file: headers.yaml\n")
        with self.assertRaises(ConfigError) as caught:
            load_config(str(path), env={})
        (problem,) = caught.exception.problems
        self.assertEqual((problem.path, problem.line), ("backends[0].headers_file", 8))

    def test_client_secret_file_loses_one_trailing_newline(self) -> None:
        directory = self.directory()
        (directory / "client.secret").write_text("abc\n\n")
        path = directory / "aigw.yaml"
        path.write_text(
            self.with_auth(
                "introspection:",
                "  endpoint: https://as.example/i",
                "  client_id: gw",
                "  client_secret_file: client.secret",
            )
        )
        auth = load_config(str(path), env={}).auth
        assert auth is not None
        assert auth.introspection is not None
        self.assertEqual(auth.introspection.client_secret, "abc\n")


class ReportTests(ConfigTestCase):
    def test_three_mistakes_give_three_problems(self) -> None:
        text = MINIMAL.replace("mcp_path: /mcp", "mcp_path: mcp") + "    timeout: 30x\nloging: {}\n"
        found = problems(text)
        self.assertEqual(
            [(p.path, p.line) for p in found],
            [("mcp_path", 3), ("backends[0].timeout", 8), ("loging", 9)],
        )

    def test_error_text_names_file_line_and_path(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            parse_config(MINIMAL.replace("mcp_path: /mcp", "mcp_path: mcp"), "my.yaml", env={})
        self.assertTrue(str(caught.exception).startswith("my.yaml:line 3: mcp_path: "))
        self.assertIn("1 problem:", format_problems(caught.exception))


class ExampleTests(ConfigTestCase):
    def test_shipped_example_loads_without_auth_or_secrets(self) -> None:
        config = load_config(str(EXAMPLE), env={})
        self.assertIsInstance(config, Config)
        self.assertIsNone(config.auth)
        self.assertEqual(config.listen, ("tcp:1975:interface=127.0.0.1",))
        self.assertEqual(config.resource_url, "http://127.0.0.1:1975/mcp")
        self.assertEqual(
            [(b.name, b.url) for b in config.backends],
            [("everything", "http://127.0.0.1:3001/mcp")],
        )
        self.assertEqual(config.source, str(EXAMPLE))

    def test_commented_auth_block_of_the_example_is_valid(self) -> None:
        text = MINIMAL.replace("auth: none\n", example_block("# auth:"))
        auth = parse_config(text, env={}).auth
        assert auth is not None
        self.assertEqual(auth.required_scopes, ("mcp:tools",))

    def test_commented_server_block_of_the_example_states_the_defaults(self) -> None:
        text = MINIMAL + example_block("# server:")
        self.assertEqual(parse_config(text, env={}).server, ServerConfig())

    def test_commented_stdio_backend_of_the_example_is_valid(self) -> None:
        lines = EXAMPLE.read_text().splitlines()
        start = lines.index("  # - name: files")
        block = []
        for line in lines[start:]:
            if not line.startswith("  #"):
                break
            block.append("  " + line.removeprefix("  # "))
        text = MINIMAL + "\n".join(block) + "\n"
        backend = parse_config(text, env={"SOME_TOKEN": "t"}).backends[1]
        self.assertEqual((backend.command, backend.env), ("npx", {"SOME_TOKEN": "t"}))
        self.assertEqual(backend.stdio, StdioConfig())


class ShippedExamplesTests(SynchronousTestCase):
    """Every config file the project ships loads, given its secrets."""

    def test_demo_and_keycloak_examples_load(self) -> None:
        import os

        from aigw.config import load_config, parse_config

        etc = EXAMPLE.parent
        key = os.path.abspath(self.mktemp())
        with open(key, "wb") as handle:
            handle.write(os.urandom(32))
        env = {"AIGW_DEMO_SESSION_KEY": key, "AIGW_SESSION_KEY_FILE": key}
        demo = load_config(str(etc / "demo.yaml"), env=env)
        self.assertEqual([b.name for b in demo.backends], ["everything", "flights"])
        self.assertEqual(demo.backends[1].required_scopes, ("tools:call",))
        keycloak = load_config(str(etc / "examples" / "keycloak.yaml"), env=env)
        assert keycloak.auth is not None
        self.assertEqual(keycloak.auth.issuer, "http://localhost:8080/realms/master")
        self.assertEqual(keycloak.auth.audiences, ("http://127.0.0.1:1975/mcp",))
        # Keycloak's "Allowed Client Scopes" policy refuses registrations asking for openid
        # (README, "Keycloak"); its tokens say typ JWT.
        self.assertEqual(keycloak.auth.scopes_supported, ("mcp:tools",))
        self.assertFalse(keycloak.auth.require_access_token_type)
        # The aigw@.service template's config: the socket systemd hands over, one shared
        # session key, a metrics port per instance.
        text = (etc / "examples" / "aigw-workers.yaml").read_text()
        self.assertIn("secret_file: /etc/aigw/session.key\n", text)
        text = text.replace("/etc/aigw/session.key", key)
        workers = parse_config(text, env={"AIGW_INSTANCE": "2"})
        self.assertEqual(workers.listen, ("systemd:domain=INET:index=0",))
        self.assertEqual(workers.metrics.listen, "tcp:9462:interface=127.0.0.1")


class SessionPoolKeysTests(SynchronousTestCase):
    def test_pool_size_and_idle_timeout_are_read(self) -> None:
        from aigw.config import parse_config

        text = (
            'listen: ["tcp:1975:interface=127.0.0.1"]\npublic_url: http://127.0.0.1:1975\n'
            "mcp_path: /mcp\nauth: none\nbackends: [{name: a, url: 'http://127.0.0.1:9/mcp'}]\n"
            "sessions: {pool_size: 50, pool_idle_timeout: 2m}\n"
        )
        config = parse_config(text)
        self.assertEqual(config.sessions.pool_size, 50)
        self.assertEqual(config.sessions.pool_idle_timeout, 120.0)

    def test_pool_size_below_one_is_a_problem_with_its_line(self) -> None:
        from aigw.config import ConfigError, parse_config

        text = (
            'listen: ["tcp:1975:interface=127.0.0.1"]\npublic_url: http://127.0.0.1:1975\n'
            "mcp_path: /mcp\nauth: none\nbackends: [{name: a, url: 'http://127.0.0.1:9/mcp'}]\n"
            "sessions:\n  pool_size: 0\n"
        )
        with self.assertRaises(ConfigError) as caught:
            parse_config(text)
        (problem,) = caught.exception.problems
        self.assertEqual((problem.path, problem.line), ("sessions.pool_size", 7))


class StreamLimitKeysTests(SynchronousTestCase):
    BASE = (
        'listen: ["tcp:1975:interface=127.0.0.1"]\npublic_url: http://127.0.0.1:1975\n'
        "mcp_path: /mcp\nauth: none\nbackends: [{name: a, url: 'http://127.0.0.1:9/mcp'}]\n"
    )

    def test_defaults_bound_streams(self) -> None:
        from aigw.config import parse_config

        config = parse_config(self.BASE)
        self.assertEqual(config.sessions.max_streams_per_user, 8)
        self.assertEqual(config.server.max_streams, 1024)

    def test_stream_limits_are_read(self) -> None:
        from aigw.config import parse_config

        text = self.BASE + "sessions: {max_streams_per_user: 3}\nserver: {max_streams: 50}\n"
        config = parse_config(text)
        self.assertEqual(config.sessions.max_streams_per_user, 3)
        self.assertEqual(config.server.max_streams, 50)

    def test_stream_limits_below_one_are_problems_with_their_lines(self) -> None:
        from aigw.config import ConfigError, parse_config

        text = self.BASE + "sessions:\n  max_streams_per_user: 0\nserver:\n  max_streams: many\n"
        with self.assertRaises(ConfigError) as caught:
            parse_config(text)
        found = [(p.path, p.line) for p in caught.exception.problems]
        self.assertEqual(found, [("sessions.max_streams_per_user", 7), ("server.max_streams", 9)])
        self.assertIn("at least 1", caught.exception.problems[0].message)
        self.assertIn("integer", caught.exception.problems[1].message)

    def test_the_get_streams_retry_is_two_seconds_unless_set(self) -> None:
        from aigw.config import parse_config

        self.assertEqual(parse_config(self.BASE).sessions.stream_retry, 2.0)
        set_ = parse_config(self.BASE + "sessions: {stream_retry: 750ms}\n")
        self.assertEqual(set_.sessions.stream_retry, 0.75)

    def test_a_retry_of_zero_none_or_past_a_minute_is_a_problem_with_its_line(self) -> None:
        """A client told 0 spends both of its tries at once (the SDKs try twice); one
        told more than a minute comes back long after its stream's linger ended."""
        from aigw.config import ConfigError, parse_config

        for value, says in (("0", "more than 0"), ("soon", "duration"), ("2m", "at most 60 s")):
            with self.subTest(value=value):
                text = self.BASE + f"sessions:\n  stream_retry: {value}\n"
                with self.assertRaises(ConfigError) as caught:
                    parse_config(text)
                (problem,) = caught.exception.problems
                self.assertEqual((problem.path, problem.line), ("sessions.stream_retry", 7))
                self.assertIn(says, problem.message)
