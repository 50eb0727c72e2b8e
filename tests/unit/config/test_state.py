"""``state_dir`` and ``token_store``: where pins and users' tokens persist, and the key
that seals the tokens; ``pin_tools`` needs them."""

from __future__ import annotations

from aigw.config import ConfigError, load_config, parse_config
from aigw.sealed.sealer import Sealer, SealError
from aigw.store.factory import store_path, store_sealer
from aigw.store.sqlite import SEAL_PURPOSE
from tests.unit.config.helpers import MINIMAL, ConfigTestCase, example_block


class StateDirTests(ConfigTestCase):
    def test_pin_tools_without_state_dir_names_the_key(self) -> None:
        text = MINIMAL + "    pin_tools: block\n"
        self.assertProblem(text, "backends[0].pin_tools", 8, "needs state_dir")

    def test_pin_tools_off_needs_nothing(self) -> None:
        config = parse_config(MINIMAL + "    pin_tools: off\n", env={})
        self.assertEqual(config.backends[0].pin_tools, "off")
        self.assertIsNone(store_path(config))

    def test_state_dir_must_be_a_directory(self) -> None:
        self.assertProblem(
            MINIMAL + "state_dir: /nonexistent/aigw\n", "state_dir", 8, "is not a directory"
        )

    def test_state_dir_needs_a_key_to_seal_with(self) -> None:
        directory = self.directory().resolve()
        self.assertProblem(
            MINIMAL + f"state_dir: {directory}\n", "state_dir", 8, "token_store.key_file"
        )

    def test_the_store_is_in_state_dir_under_its_own_key(self) -> None:
        directory = self.directory().resolve()
        (directory / "store.key").write_bytes(b"s" * 32)
        (directory / "store.key").chmod(0o600)
        text = MINIMAL + f"state_dir: {directory}\ntoken_store:\n  key_file: store.key\n"
        path = directory / "aigw.yaml"
        path.write_text(text)
        config = load_config(str(path), env={})
        self.assertEqual(store_path(config), f"{directory}/aigw.sqlite3")
        sealed = store_sealer(config).seal({"a": 1})
        self.assertEqual(Sealer(b"s" * 32, purpose=SEAL_PURPOSE).open(sealed), {"a": 1})

    def test_without_token_store_the_key_is_derived_from_the_session_key(self) -> None:
        directory = self.directory().resolve()
        (directory / "session.key").write_bytes(b"k" * 32)
        (directory / "session.key").chmod(0o600)
        path = directory / "aigw.yaml"
        path.write_text(
            MINIMAL + f"state_dir: {directory}\nsessions:\n  secret_file: session.key\n"
        )
        sealer = store_sealer(load_config(str(path), env={}))
        sealed = sealer.seal({"a": 1})
        self.assertEqual(Sealer(b"k" * 32, purpose=SEAL_PURPOSE).open(sealed), {"a": 1})
        with self.assertRaises(SealError):  # the sessions' own key does not open it
            Sealer(b"k" * 32).open(sealed)

    def test_a_short_key_names_its_line(self) -> None:
        directory = self.directory().resolve()
        (directory / "store.key").write_bytes(b"s" * 16)
        path = directory / "aigw.yaml"
        path.write_text(MINIMAL + "token_store:\n  key_file: store.key\n")
        with self.assertRaises(ConfigError) as caught:
            load_config(str(path), env={})
        [problem] = caught.exception.problems
        self.assertEqual((problem.path, problem.line), ("token_store.key_file", 9))
        self.assertIn("at least 32", problem.message)

    def test_a_key_file_others_may_read_warns_and_strict_modes_refuse(self) -> None:
        directory = self.directory().resolve()
        (directory / "store.key").write_bytes(b"s" * 32)
        (directory / "store.key").chmod(0o644)
        path = directory / "aigw.yaml"
        text = MINIMAL + "token_store:\n  key_file: store.key\n"
        path.write_text(text)
        [warning] = load_config(str(path), env={}).warnings
        self.assertEqual((warning.path, warning.line), ("token_store.key_file", 9))
        self.assertIn("(mode 0644)", warning.message)
        path.write_text(text + "strict_file_modes: true\n")
        with self.assertRaises(ConfigError) as caught:
            load_config(str(path), env={})
        self.assertEqual([p.path for p in caught.exception.problems], ["token_store.key_file"])

    def test_the_examples_commented_token_store_block_is_valid(self) -> None:
        directory = self.directory().resolve()
        (directory / "token-store.key").write_bytes(b"t" * 32)
        block = example_block("# token_store:").replace("/etc/aigw/", f"{directory}/")
        config = parse_config(MINIMAL + f"state_dir: {directory}\n" + block + "\n", env={})
        self.assertEqual(config.token_store.key, b"t" * 32)
        self.assertEqual(config.token_store.old_keys, ())
