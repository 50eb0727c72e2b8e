"""audit_file.AuditFile: JSON lines appended, whole or not at all; write failures
(/dev/full: ENOSPC, or a fake ``os.write``) warned about, counted, held with ``refuse``;
the file reopened for rotation."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import Logger, LogPublisher
from twisted.trial.unittest import SynchronousTestCase

from aigw.audit import NAMESPACE
from aigw.audit_file import EX_CANTCREAT, MAX_HELD, PROBE_INTERVAL, WARN_INTERVAL, AuditFile

FULL = "/dev/full"


class Failing:
    """``os.write`` that fails with ``errno`` while ``failing``, writes only ``short``
    bytes when set, and writes for real otherwise."""

    def __init__(self) -> None:
        self.failing: int | None = None
        self.short: int | None = None

    def __call__(self, descriptor: int, data: bytes) -> int:
        if self.failing is not None:
            raise OSError(self.failing, os.strerror(self.failing))
        if self.short is not None:
            return os.write(descriptor, data[: self.short])
        return os.write(descriptor, data)


class AuditFileCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.publisher = LogPublisher()
        # The process log: everything that is not the trail.
        self.logged: list[dict[str, Any]] = []
        self.publisher.addObserver(
            lambda e: self.logged.append(e) if e["log_namespace"] != NAMESPACE else None
        )
        self.trail = Logger(namespace=NAMESPACE, observer=self.publisher)
        self.path = Path(self.mktemp())

    def started(self, path: str | None = None, refuse: bool = False) -> AuditFile:
        audit = AuditFile(path or str(self.path), self.clock, refuse, self.publisher)
        audit.startService()
        self.addCleanup(lambda: audit.running and audit.stopService())
        return audit

    def capture_writer_log(self, audit: AuditFile) -> None:
        """The writer's and the file's warnings, into ``self.logged``."""
        assert audit.writer is not None
        audit.writer.log = Logger(namespace="aigw.audit_file.AuditWriter", observer=self.publisher)
        audit.log = Logger(namespace="aigw.audit_file.AuditFile", observer=self.publisher)

    def audit(self, count: int = 1, event: str = "access_decided") -> None:
        for index in range(count):
            self.trail.info("x", event=event, request_id=f"r-{index}")

    def lines(self, path: Path | None = None) -> list[str]:
        return (path or self.path).read_text().splitlines()

    def said(self, level: str) -> list[str]:
        return [
            e["log_format"].format(**e)
            for e in self.logged
            if e["log_level"].name == level and "log_format" in e
        ]

    def tracebacks(self) -> list[dict[str, Any]]:
        return [e for e in self.logged if "log_failure" in e]


class FileTests(AuditFileCase):
    def test_appends_json_lines_of_the_trail_only(self) -> None:
        self.path.write_text('{"earlier": true}\n')
        audit = self.started()
        self.audit()
        Logger(namespace="aigw.access", observer=self.publisher).info("not audit")
        Logger(namespace="aigw.audit.AuditTrail", observer=self.publisher).info("nor this")
        audit.stopService()
        self.audit()  # after stop: nowhere
        lines = [json.loads(line) for line in self.lines()]
        self.assertEqual([line.get("event") for line in lines], [None, "access_decided"])

    def test_made_readable_by_owner_and_group_only(self) -> None:
        audit = self.started()
        audit.stopService()
        mode = stat.S_IMODE(os.stat(self.path).st_mode)
        self.assertEqual(mode & ~0o640, 0, oct(mode))

    def test_a_file_that_cannot_be_opened_stops_the_start(self) -> None:
        audit = AuditFile(os.path.join(self.mktemp(), "missing", "a.log"), self.clock)
        with self.assertRaises(SystemExit) as caught:
            audit.startService()
        self.assertEqual(caught.exception.code, EX_CANTCREAT)
        self.assertFalse(audit.running)


class WriteErrorTests(AuditFileCase):
    """``audit.on_write_error: log`` (the default)."""

    def test_a_full_disk_is_one_warning_not_a_traceback_per_event(self) -> None:
        audit = self.started(FULL)
        self.capture_writer_log(audit)
        self.audit(5)
        self.assertEqual(self.tracebacks(), [])
        [warning] = self.said("warn")
        self.assertIn(f"cannot write the audit file {FULL}: No space left on device", warning)
        self.assertIn("1 audit event(s) not written since the last warning, 1 in all", warning)
        self.assertIn("lost (audit.on_write_error: log)", warning)
        self.assertEqual(audit.errors, 5)

    def test_at_most_one_warning_an_interval_with_the_count_since_the_last(self) -> None:
        audit = self.started(FULL)
        self.capture_writer_log(audit)
        self.audit(3)
        self.clock.advance(WARN_INTERVAL - 0.5)
        self.audit(2)
        self.assertEqual(len(self.said("warn")), 1)
        self.clock.advance(0.5)
        self.audit()
        later = self.said("warn")[1]
        self.assertIn("5 audit event(s) not written since the last warning, 6 in all", later)

    def test_writing_again_is_one_info_line_and_lines_stay_whole(self) -> None:
        audit = self.started()
        self.capture_writer_log(audit)
        write = Failing()
        assert audit.writer is not None
        audit.writer.write_bytes = write
        write.failing = errno.EIO
        self.audit(2)
        self.assertIsNotNone(audit.unavailable())
        write.failing = None
        self.audit(2)
        self.assertIsNone(audit.unavailable())
        [info] = self.said("info")
        self.assertEqual(
            info,
            f"the audit file {self.path} is written again; 2 audit event(s) could not be "
            "written when they happened, 2 of them lost",
        )
        self.assertEqual(len(self.lines()), 2)

    def test_a_line_cut_short_is_never_glued_to_the_next(self) -> None:
        """write(2) may stop short when the disk fills: the fragment stays, alone on its
        line; the next line written starts with a newline and is whole."""
        audit = self.started()
        write = Failing()
        assert audit.writer is not None
        audit.writer.write_bytes = write
        self.audit()
        write.short = 10
        self.audit()
        write.short = None
        self.audit(2)
        first, fragment, *rest = self.lines()
        self.assertEqual(len(fragment), 10)
        self.assertEqual(
            [json.loads(line)["event"] for line in (first, *rest)], ["access_decided"] * 3
        )
        self.assertEqual(audit.errors, 1)


class RefuseTests(AuditFileCase):
    """``audit.on_write_error: refuse``: fail closed, held events, probed."""

    def setUp(self) -> None:
        super().setUp()
        self.file = self.started(refuse=True)
        self.capture_writer_log(self.file)
        self.write = Failing()
        assert self.file.writer is not None
        self.file.writer.write_bytes = self.write

    def test_unavailable_from_the_first_failed_write_until_one_succeeds(self) -> None:
        self.assertIsNone(self.file.unavailable())
        self.write.failing = errno.ENOSPC
        self.audit()
        self.assertEqual(
            self.file.unavailable(),
            f"cannot write the audit file {self.path}: No space left on device",
        )
        [warning] = self.said("warn")
        self.assertIn("audited requests are refused", warning)
        self.clock.advance(PROBE_INTERVAL)
        self.assertIsNotNone(self.file.unavailable())
        self.write.failing = None
        self.clock.advance(PROBE_INTERVAL)
        self.assertIsNone(self.file.unavailable())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_held_events_are_written_in_order_once_the_file_takes_them(self) -> None:
        self.audit()
        self.write.failing = errno.EIO
        self.trail.info("x", event="held", request_id="a")
        self.trail.info("x", event="held", request_id="b")
        self.write.failing = None
        self.trail.info("x", event="held", request_id="c")  # after the held ones, not before
        self.assertEqual(len(self.lines()), 1)
        self.clock.advance(PROBE_INTERVAL)
        ids = [json.loads(line)["request_id"] for line in self.lines()]
        self.assertEqual(ids, ["r-0", "a", "b", "c"])
        self.assertIn(
            "3 audit event(s) could not be written when they happened, 0 of them lost",
            self.said("info")[0],
        )
        self.assertEqual(self.file.errors, 3)

    def test_held_events_are_bounded(self) -> None:
        self.write.failing = errno.ENOSPC
        self.audit(MAX_HELD + 5)
        self.write.failing = None
        self.clock.advance(PROBE_INTERVAL)
        self.assertEqual(len(self.lines()), MAX_HELD)
        self.assertIn(
            f"{MAX_HELD + 5} audit event(s) could not be written when they happened, "
            "5 of them lost",
            self.said("info")[0],
        )

    def test_stopping_says_what_was_never_written(self) -> None:
        self.write.failing = errno.ENOSPC
        self.audit(3)
        self.file.stopService()
        self.assertIn(
            f"stopping with 3 audit event(s) never written to {self.path}", self.said("warn")[-1]
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ReopenTests(AuditFileCase):
    """logrotate's ``create``: the file moved away, a reload, a new file."""

    def test_after_a_rotation_events_go_to_a_new_file_and_the_old_one_is_kept(self) -> None:
        audit = self.started()
        self.capture_writer_log(audit)
        self.audit()
        rotated = Path(f"{self.path}.1")
        self.path.rename(rotated)
        audit.reopen()
        self.trail.info("x", event="after")
        self.assertEqual(
            [json.loads(line)["event"] for line in self.lines(rotated)], ["access_decided"]
        )
        self.assertEqual([json.loads(line)["event"] for line in self.lines()], ["after"])
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode) & ~0o640, 0)
        self.assertIn(f"reopened the audit file {self.path}", self.said("info"))

    def test_a_path_that_cannot_be_reopened_keeps_the_open_file(self) -> None:
        directory = Path(self.mktemp())
        directory.mkdir()
        path = directory / "audit.log"
        audit = self.started(str(path))
        self.capture_writer_log(audit)
        moved = Path(self.mktemp())
        directory.rename(moved)
        audit.reopen()
        self.audit()
        [error] = self.said("error")
        self.assertIn(f"cannot reopen the audit file {path}: No such file or directory", error)
        self.assertEqual(len(self.lines(moved / "audit.log")), 1)

    def test_reopening_tries_the_held_events_at_once(self) -> None:
        audit = self.started(FULL, refuse=True)
        self.audit(2)
        self.assertIsNotNone(audit.unavailable())
        audit.path = str(self.path)  # what the operator fixed
        audit.reopen()
        self.assertIsNone(audit.unavailable())
        self.assertEqual(len(self.lines()), 2)

    def test_a_torn_line_of_the_old_file_is_not_the_new_files(self) -> None:
        audit = self.started()
        write = Failing()
        assert audit.writer is not None
        audit.writer.write_bytes = write
        write.short = 5
        self.audit()
        write.short = None
        self.path.rename(f"{self.path}.1")
        audit.reopen()
        self.audit()
        self.assertTrue(self.path.read_text().startswith("{"))
