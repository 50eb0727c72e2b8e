"""Secrets at rest (issue 16 item 6): key files and config files others may read."""

from __future__ import annotations

import os
from pathlib import Path

from aigw.config import ConfigError, Problem, load_config, parse_config
from aigw.config.secrets import file_mode_problems, is_credential_header, readable_by_others
from tests.unit.config.helpers import MINIMAL, ConfigTestCase

KEY = b"k" * 32


class FileModeTests(ConfigTestCase):
    """``file_mode_problems``, the check ``aigw doctor`` may call too."""

    def key(self, mode: int, data: bytes = KEY) -> Path:
        path = self.directory() / "session.key"
        path.write_bytes(data)
        path.chmod(mode)
        return path

    def test_owner_only_is_fine(self) -> None:
        self.assertEqual(file_mode_problems(str(self.key(0o600))), [])
        self.assertEqual(file_mode_problems(str(self.key(0o400))), [])

    def test_group_readable_is_named(self) -> None:
        path = self.key(0o640)
        [problem] = file_mode_problems(str(path))
        self.assertIn("readable by its group (mode 0640)", problem)
        self.assertIn(f"chmod 600 {path}", problem)

    def test_world_readable_is_named(self) -> None:
        [problem] = file_mode_problems(str(self.key(0o644)))
        self.assertIn("readable by its group and others (mode 0644)", problem)

    def test_another_owner_is_named(self) -> None:
        path = self.key(0o600)
        if os.geteuid() != 0:
            self.skipTest("giving a file to another user needs root")
        os.chown(path, 4242, -1)
        [problem] = file_mode_problems(str(path), euid=4343)
        self.assertIn("owned by uid 4242, neither aigw's user (uid 4343) nor root", problem)

    def test_a_missing_file_says_nothing(self) -> None:
        self.assertEqual(file_mode_problems(self.mktemp()), [])
        self.assertFalse(readable_by_others(self.mktemp()))

    def test_credential_headers(self) -> None:
        for name in ("Authorization", "X-Api-Key", "x-api_key", "X-Auth-Token", "Cookie"):
            self.assertTrue(is_credential_header(name), name)
        for name in ("X-Tenant", "Accept-Language", "User-Agent"):
            self.assertFalse(is_credential_header(name), name)


class SecretsAtRestTests(ConfigTestCase):
    """The loader applies the check to every secret a config names."""

    def write(self, name: str, data: bytes, mode: int) -> Path:
        path = self.directory().resolve() / name
        path.write_bytes(data)
        path.chmod(mode)
        return path

    def config(self, text: str, mode: int = 0o600) -> Path:
        return self.write("aigw.yaml", text.encode(), mode)

    def load_warnings(self, text: str, mode: int = 0o600) -> list[Problem]:
        return list(load_config(str(self.config(text, mode)), env={"SECRET": "s" * 32}).warnings)

    def test_session_key_readable_by_others_warns(self) -> None:
        """A session key file (`sessions.secret_file`) with mode 0644.

        expected: the config loads; a warning names `sessions.secret_file`, its line and the mode
        """
        key = self.write("session.key", KEY, 0o644)
        warnings = self.load_warnings(MINIMAL + f"sessions:\n  secret_file: {key}\n")
        self.assertEqual([(w.path, w.line) for w in warnings], [("sessions.secret_file", 9)])
        self.assertIn("(mode 0644)", warnings[0].message)

    def test_private_session_key_gets_no_warning(self) -> None:
        """A session key file with mode 0600, in a config file with mode 0600.

        expected: no warning
        """
        key = self.write("session.key", KEY, 0o600)
        self.assertEqual(self.load_warnings(MINIMAL + f"sessions:\n  secret_file: {key}\n"), [])

    def test_old_session_keys_are_checked(self) -> None:
        """An old session key (`sessions.old_secret_files[0]`) readable by its group (0640).

        expected: a warning naming `sessions.old_secret_files[0]` and its line
        """
        key = self.write("old.key", KEY, 0o640)
        text = MINIMAL + f"sessions:\n  old_secret_files:\n    - {key}\n"
        [warning] = self.load_warnings(text)
        self.assertEqual((warning.path, warning.line), ("sessions.old_secret_files[0]", 10))

    def test_shared_secret_file_is_checked(self) -> None:
        """The HS256 key `auth.shared_secret_file` with mode 0644.

        expected: a warning naming `auth.shared_secret_file`
        """
        key = self.write("hs.key", b"h" * 32, 0o644)
        text = self.with_auth(f"shared_secret_file: {key}", "algorithms: [HS256]")
        [warning] = self.load_warnings(text)
        self.assertEqual(warning.path, "auth.shared_secret_file")

    def test_backend_client_secrets_are_checked(self) -> None:
        """A backend's `client_credentials.client_secret_file`, `token_exchange.client_secret_file`
        and `headers_file`, each with mode 0644.

        expected: one warning for each, naming its key path
        """
        secret = self.write("client.secret", b"s3cret\n", 0o644)
        headers = self.write("headers.yaml", b"X-Api-Key: k\n", 0o644)
        text = MINIMAL.replace("auth: none\n", "auth: {issuer: https://as.example}\n") + (
            f"    headers_file: {headers}\n"
            "    auth:\n"
            "      client_credentials:\n"
            "        token_endpoint: https://idp.example/token\n"
            "        client_id: aigw\n"
            f"        client_secret_file: {secret}\n"
            "  - name: two\n"
            "    url: http://127.0.0.1:3002/mcp\n"
            "    auth:\n"
            "      token_exchange:\n"
            "        token_endpoint: https://idp.example/token\n"
            "        client_id: aigw\n"
            f"        client_secret_file: {secret}\n"
        )
        paths = [w.path for w in self.load_warnings(text)]
        self.assertEqual(
            paths,
            [
                "backends[0].headers_file",
                "backends[0].auth.client_credentials.client_secret_file",
                "backends[1].auth.token_exchange.client_secret_file",
            ],
        )

    def test_strict_file_modes_refuses_the_config(self) -> None:
        """A session key file with mode 0644 under `strict_file_modes: true`.

        expected: ConfigError (exit 78 at start, reload refused) naming `sessions.secret_file`
        """
        key = self.write("session.key", KEY, 0o644)
        text = MINIMAL + f"strict_file_modes: true\nsessions:\n  secret_file: {key}\n"
        with self.assertRaises(ConfigError) as raised:
            load_config(str(self.config(text)))
        [problem] = raised.exception.problems
        self.assertEqual((problem.path, problem.line), ("sessions.secret_file", 10))

    def test_literal_secret_in_a_world_readable_config_warns(self) -> None:
        """`auth.shared_secret` written out in a config file with mode 0644.

        expected: a warning naming `auth.shared_secret` and its line
        """
        text = self.with_auth("shared_secret: " + "h" * 32, "algorithms: [HS256]")
        [warning] = self.load_warnings(text, mode=0o644)
        self.assertEqual((warning.path, warning.line), ("auth.shared_secret", 6))
        self.assertIn("every user may read", warning.message)

    def test_literal_secret_in_a_private_config_is_fine(self) -> None:
        """`auth.shared_secret` written out in a config file with mode 0640.

        expected: no warning: only aigw's user and group read the file
        """
        text = self.with_auth("shared_secret: " + "h" * 32, "algorithms: [HS256]")
        self.assertEqual(self.load_warnings(text, mode=0o640), [])

    def test_secret_from_the_environment_is_fine(self) -> None:
        """`sessions.secret: ${SECRET}` in a config file with mode 0644.

        expected: no warning: the file holds no secret
        """
        self.assertEqual(
            self.load_warnings(MINIMAL + "sessions:\n  secret: ${SECRET}\n", mode=0o644), []
        )

    def test_credential_headers_written_out_warn(self) -> None:
        """Static headers `Authorization` and `My-Api-Key` written out, `X-Api-Key` as
        `${SECRET}`, and `X-Tenant`, in a config file with mode 0644.

        expected: a warning for `Authorization` and `My-Api-Key`, none for the others
        """
        text = MINIMAL + (
            "    headers:\n"
            "      Authorization: Bearer abc\n"
            "      X-Api-Key: ${SECRET}\n"
            "      My-Api-Key: abc\n"
            "      X-Tenant: acme\n"
        )
        warnings = self.load_warnings(text, mode=0o644)
        self.assertEqual(
            [(w.path, w.line) for w in warnings],
            [("backends[0].headers.Authorization", 9), ("backends[0].headers.My-Api-Key", 11)],
        )

    def test_strict_file_modes_refuses_a_world_readable_literal_secret(self) -> None:
        """`sessions.secret` written out in a config file with mode 0644, strict_file_modes on.

        expected: ConfigError naming `sessions.secret`
        """
        text = MINIMAL + "strict_file_modes: true\nsessions:\n  secret: " + "s" * 32 + "\n"
        with self.assertRaises(ConfigError) as raised:
            load_config(str(self.config(text, mode=0o644)))
        self.assertEqual([p.path for p in raised.exception.problems], ["sessions.secret"])

    def test_literal_secret_in_an_imported_servers_file_warns(self) -> None:
        """An `mcpServers` file (`import_mcp_servers`) with mode 0644 whose server has a
        written-out `Authorization` header.

        expected: a warning naming that file and `mcpServers.crm.headers.Authorization`
        """
        servers = self.write(
            "mcp.json",
            b'{"mcpServers": {"crm": {"type": "http", "url": "http://127.0.0.1:3/mcp",\n'
            b'  "headers": {"Authorization": "Bearer abc"}}}}\n',
            0o644,
        )
        text = MINIMAL.replace("backends:", f"import_mcp_servers: {servers}\nbackends:")
        [warning] = self.load_warnings(text)
        self.assertEqual(
            (warning.source, warning.path, warning.line),
            (str(servers), "mcpServers.crm.headers.Authorization", 2),
        )

    def test_parsed_text_has_no_file_to_check(self) -> None:
        self.assertEqual(
            parse_config(MINIMAL + "sessions:\n  secret: " + "s" * 32 + "\n").warnings, ()
        )

    def test_warnings_is_not_a_key(self) -> None:
        problem = self.only_problem(MINIMAL + "warnings: []\n")
        self.assertIn("unknown key 'warnings'", problem.message)
