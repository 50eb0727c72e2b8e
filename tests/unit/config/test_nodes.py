"""``nodes.read_text``: the one way a command reads the file it is given (the config,
``--mcp-config``, ``aigw convert``'s), each failure a ConfigError naming the file."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from aigw.config import ConfigError, Problem, load_config
from aigw.config import command_line as cl
from aigw.config.envoy import convert_file
from aigw.config.nodes import MAX_FILE_BYTES, read_text
from tests.unit.config.helpers import ConfigTestCase


class ReadTextTests(ConfigTestCase):
    def only_file_problem(self, path: str) -> str:
        with self.assertRaises(ConfigError) as caught:
            read_text(path)
        self.assertEqual(caught.exception.source, path)
        [problem] = caught.exception.problems
        self.assertEqual((problem.path, problem.line), ("(file)", None))
        return problem.message

    def test_the_text_of_a_utf8_file(self) -> None:
        path = self.directory() / "a.yaml"
        path.write_bytes("listen: tcp:8080 # é\n".encode())
        self.assertEqual(read_text(str(path)), "listen: tcp:8080 # é\n")

    def test_a_missing_file_cannot_be_read(self) -> None:
        message = self.only_file_problem(str(self.directory() / "missing.yaml"))
        self.assertEqual(message, "cannot read: No such file or directory")

    def test_a_directory_cannot_be_read(self) -> None:
        message = self.only_file_problem(str(self.directory()))
        self.assertEqual(message, "cannot read: Is a directory")

    def test_a_file_past_the_bound_cannot_be_read(self) -> None:
        path = self.directory() / "huge.yaml"
        path.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
        message = self.only_file_problem(str(path))
        self.assertEqual(message, f"cannot read: larger than {MAX_FILE_BYTES} bytes")

    def test_a_file_not_utf8_is_said_so(self) -> None:
        path = self.directory() / "latin1.yaml"
        path.write_bytes(b"listen: \xff\n")
        self.assertTrue(self.only_file_problem(str(path)).startswith("not UTF-8 text: "))


class EveryCommandReadsThroughIt(SynchronousTestCase):
    """The config, ``--mcp-config`` and ``aigw convert FILE`` say the same of one bad file."""

    def test_each_reader_says_what_read_text_says(self) -> None:
        path = self.mktemp()
        with open(path, "wb") as stream:
            stream.write(b"\xff\xfe{}\n")
        readers = (load_config, lambda p: cl.servers_file(path=p), convert_file)
        for reader in readers:
            with self.assertRaises(ConfigError) as caught:
                reader(path)
            self.assertEqual(
                caught.exception.problems,
                [Problem("(file)", None, caught.exception.problems[0].message)],
            )
            self.assertTrue(caught.exception.problems[0].message.startswith("not UTF-8 text"))
