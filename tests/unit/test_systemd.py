"""sd_notify(3) over a real AF_UNIX datagram socket; the watchdog and readiness on a Clock."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Mapping

from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import AuthConfig, BackendConfig, Config
from aigw.service import GatewayService
from aigw.systemd import (
    Notifier,
    SystemdService,
    WatchdogService,
    notify_address,
    watchdog_interval,
)


class Receiver:
    """A bound datagram socket standing in for systemd's notify socket."""

    def __init__(self, case: SynchronousTestCase, abstract: bool = False) -> None:
        if abstract:
            name = f"aigw-test-{uuid.uuid4().hex}"
            self.env_value = "@" + name
            address = "\0" + name
        else:
            # A short directory: AF_UNIX paths hold at most 107 bytes.
            directory = tempfile.mkdtemp(prefix="aigw-notify-")
            case.addCleanup(shutil.rmtree, directory)
            address = self.env_value = os.path.join(directory, "notify")
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        case.addCleanup(self.socket.close)
        self.socket.bind(address)
        self.socket.setblocking(False)

    @property
    def environ(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.env_value}

    def messages(self) -> list[dict[str, str]]:
        """Every datagram queued so far, parsed into its assignments."""
        received = []
        while True:
            try:
                data = self.socket.recv(4096)
            except BlockingIOError:
                return received
            received.append(parse(data))


def parse(data: bytes) -> dict[str, str]:
    """A state string: newline-separated NAME=value (sd_notify(3))."""
    fields = {}
    for line in data.decode("utf-8").split("\n"):
        name, _, value = line.partition("=")
        fields[name] = value
    return fields


def notifier(case: SynchronousTestCase, environ: Mapping[str, str]) -> Notifier:
    made = Notifier(environ)
    case.addCleanup(made.close)
    return made


class NotifyAddressTests(SynchronousTestCase):
    def test_absolute_path_is_a_file_system_socket(self) -> None:
        self.assertEqual(notify_address("/run/systemd/notify"), "/run/systemd/notify")

    def test_at_sign_is_the_abstract_namespace(self) -> None:
        self.assertEqual(notify_address("@systemd/notify"), "\0systemd/notify")

    def test_anything_else_is_unusable(self) -> None:
        for value in ("", "@", "relative/notify", "vsock:2:1234"):
            self.assertIsNone(notify_address(value), value)


class NotifierTests(SynchronousTestCase):
    def test_each_message_arrives_as_one_datagram(self) -> None:
        receiver = Receiver(self)
        sender = notifier(self, receiver.environ)
        self.assertTrue(sender.enabled)
        sender.status("starting")
        sender.ready("serving on tcp:1975")
        sender.watchdog()
        sender.stopping("stopping")
        self.assertEqual(
            receiver.messages(),
            [
                {"STATUS": "starting"},
                {"READY": "1", "STATUS": "serving on tcp:1975"},
                {"WATCHDOG": "1"},
                {"STOPPING": "1", "STATUS": "stopping"},
            ],
        )

    def test_reloading_carries_the_monotonic_time(self) -> None:
        """systemd 253+ matches RELOADING=1 to its reload by MONOTONIC_USEC= (sd_notify(3))."""
        receiver = Receiver(self)
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        notifier(self, receiver.environ).reloading("reloading")
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        (message,) = receiver.messages()
        self.assertEqual(message["RELOADING"], "1")
        self.assertEqual(message["STATUS"], "reloading")
        self.assertTrue(before <= int(message["MONOTONIC_USEC"]) <= after, message)

    def test_abstract_socket(self) -> None:
        receiver = Receiver(self, abstract=True)
        notifier(self, receiver.environ).ready("ok")
        self.assertEqual(receiver.messages(), [{"READY": "1", "STATUS": "ok"}])

    def test_a_status_stays_on_its_line(self) -> None:
        """A newline in a status would start a new assignment: it becomes a space."""
        receiver = Receiver(self)
        notifier(self, receiver.environ).status("waiting\nREADY=1")
        self.assertEqual(receiver.messages(), [{"STATUS": "waiting READY=1"}])

    def test_without_notify_socket_nothing_happens(self) -> None:
        sender = notifier(self, {})
        self.assertFalse(sender.enabled)
        with capturedLogs() as events:
            sender.ready("serving")
            sender.reloading("reloading")
            sender.watchdog()
            sender.stopping("stopping")
        self.assertEqual(events, [])
        self.assertIsNone(sender._socket)

    def test_unusable_notify_socket_is_logged_and_ignored(self) -> None:
        with capturedLogs() as events:
            sender = notifier(self, {"NOTIFY_SOCKET": "vsock:2:1234"})
        self.assertFalse(sender.enabled)
        self.assertEqual(len(events), 1)
        self.assertIn("vsock:2:1234", events[0]["log_format"].format(**events[0]))

    def test_a_vanished_socket_is_logged_once_and_never_raised(self) -> None:
        receiver = Receiver(self)
        sender = notifier(self, receiver.environ)
        receiver.socket.close()
        os.unlink(receiver.env_value)
        with capturedLogs() as events:
            sender.ready("serving")
            sender.watchdog()
            sender.watchdog()
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["socket"], receiver.env_value)


class WatchdogIntervalTests(SynchronousTestCase):
    def test_half_of_watchdog_usec(self) -> None:
        self.assertEqual(watchdog_interval({"WATCHDOG_USEC": "200000"}, 42), 0.1)
        self.assertEqual(watchdog_interval({"WATCHDOG_USEC": "30000000"}, 42), 15.0)

    def test_watchdog_pid_must_be_ours(self) -> None:
        environ = {"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "42"}
        self.assertEqual(watchdog_interval(environ, 42), 0.1)
        self.assertIsNone(watchdog_interval(environ, 43))

    def test_no_or_bad_watchdog_usec_means_no_watchdog(self) -> None:
        for environ in (
            {},
            {"WATCHDOG_USEC": ""},
            {"WATCHDOG_USEC": "0"},
            {"WATCHDOG_USEC": "-5"},
            {"WATCHDOG_USEC": "soon"},
            {"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "me"},
        ):
            self.assertIsNone(watchdog_interval(environ, 42), environ)


class WatchdogServiceTests(SynchronousTestCase):
    def watchdog(self, extra: Mapping[str, str]) -> tuple[WatchdogService, Receiver, Clock]:
        receiver = Receiver(self)
        environ = {**receiver.environ, **extra}
        clock = Clock()
        service = WatchdogService(notifier(self, environ), clock, environ, pid=42)
        return service, receiver, clock

    def test_keepalive_every_half_watchdog_usec_while_running(self) -> None:
        service, receiver, clock = self.watchdog({"WATCHDOG_USEC": "200000"})
        self.assertEqual(service.interval, 0.1)
        service.startService()
        self.assertEqual(receiver.messages(), [], "the first one waits for the reactor")
        clock.advance(0.05)
        self.assertEqual(receiver.messages(), [])
        clock.advance(0.05)
        self.assertEqual(receiver.messages(), [{"WATCHDOG": "1"}])
        clock.advance(0.1)
        clock.advance(0.1)
        self.assertEqual(receiver.messages(), [{"WATCHDOG": "1"}] * 2)
        service.stopService()
        clock.advance(1)
        self.assertEqual(receiver.messages(), [])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_another_process_watchdog_is_not_ours(self) -> None:
        service, receiver, clock = self.watchdog({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "7"})
        service.startService()
        clock.advance(1)
        self.assertEqual(receiver.messages(), [])
        self.assertEqual(clock.getDelayedCalls(), [])
        service.stopService()

    def test_no_watchdog_usec_no_loop(self) -> None:
        service, _, clock = self.watchdog({})
        service.startService()
        self.assertEqual(clock.getDelayedCalls(), [])
        service.stopService()

    def test_no_notify_socket_no_loop(self) -> None:
        clock = Clock()
        environ = {"WATCHDOG_USEC": "200000"}
        service = WatchdogService(notifier(self, environ), clock, environ, pid=42)
        service.startService()
        self.assertEqual(clock.getDelayedCalls(), [])
        service.stopService()


class FakeReadiness:
    def __init__(self) -> None:
        self.checks = {"listeners": "ok", "signing_keys": "signing keys not loaded"}
        self.calls = 0

    def report(self) -> tuple[bool, dict[str, str]]:
        self.calls += 1
        return all(v == "ok" for v in self.checks.values()), dict(self.checks)


class SystemdServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.receiver = Receiver(self)
        self.clock = Clock()
        self.readiness = FakeReadiness()
        environ = {**self.receiver.environ, "WATCHDOG_USEC": "1000000"}
        self.service = SystemdService(
            notifier(self, environ),
            self.clock,
            self.readiness.report,
            "serving on tcp:1975",
            environ,
            pid=42,
        )

    def test_ready_once_when_every_check_passes(self) -> None:
        self.service.startService()
        self.assertEqual(self.receiver.messages(), [{"STATUS": "starting"}])
        self.assertEqual(self.readiness.calls, 0, "checked once the reactor runs")
        self.clock.advance(0)
        self.assertEqual(self.receiver.messages(), [{"STATUS": "waiting: signing keys not loaded"}])
        self.clock.advance(0.1)
        self.clock.advance(0.1)
        self.assertEqual(self.receiver.messages(), [], "an unchanged status is not repeated")
        self.readiness.checks["signing_keys"] = "ok"
        self.clock.advance(0.1)
        self.assertEqual(
            self.receiver.messages(), [{"READY": "1", "STATUS": "serving on tcp:1975"}]
        )
        self.assertTrue(self.service.announced)
        calls = self.readiness.calls
        self.clock.advance(0.4)
        self.assertEqual(self.readiness.calls, calls, "no polling once ready")
        self.assertEqual(self.receiver.messages(), [{"WATCHDOG": "1"}])
        self.service.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_reload_is_reloading_then_ready(self) -> None:
        self.readiness.checks["signing_keys"] = "ok"
        self.service.startService()
        self.clock.advance(0)
        self.receiver.messages()
        self.service.reloading()
        self.service.reloaded()
        reloading, ready = self.receiver.messages()
        self.assertEqual(reloading["RELOADING"], "1")
        self.assertIn("MONOTONIC_USEC", reloading)
        self.assertEqual(ready, {"READY": "1", "STATUS": "serving on tcp:1975"})
        self.service.stopService()

    def test_reload_before_start_up_completes_leaves_ready_to_the_checks(self) -> None:
        self.service.startService()
        self.clock.advance(0)
        self.receiver.messages()
        self.service.reloading()
        self.service.reloaded()
        self.assertEqual([m.get("READY") for m in self.receiver.messages()], [None])
        self.readiness.checks["signing_keys"] = "ok"
        self.clock.advance(0.1)
        self.assertEqual(self.receiver.messages()[-1]["READY"], "1")
        self.service.stopService()

    def test_stopping_once_and_nothing_after(self) -> None:
        self.readiness.checks["signing_keys"] = "ok"
        self.service.startService()
        self.clock.advance(0)
        self.receiver.messages()
        self.service.stopping()
        self.service.stopping()
        self.service.reloading()
        self.service.reloaded()
        self.assertEqual(
            self.receiver.messages(),
            [{"STOPPING": "1", "STATUS": "stopping: draining in-flight requests"}],
        )
        self.service.stopService()

    def test_stopped_before_the_reactor_ran(self) -> None:
        self.service.startService()
        self.service.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_without_notify_socket_nothing_is_scheduled(self) -> None:
        service = SystemdService(
            notifier(self, {}), self.clock, self.readiness.report, "serving", {}
        )
        service.startService()
        self.clock.advance(1)
        self.assertEqual(self.readiness.calls, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        service.stopService()


class GatewayServiceTests(SynchronousTestCase):
    """GatewayService tells systemd: starting, READY=1 once listening, reload, STOPPING=1."""

    def start(
        self, auth: AuthConfig | None = None
    ) -> tuple[GatewayService, Receiver, MemoryReactorClock]:
        receiver = Receiver(self)
        config = Config(
            listen=("tcp:0",),
            public_url="https://gw.example",
            mcp_path="/mcp",
            auth=auth,
            backends=(BackendConfig(name="files", url="http://127.0.0.1:9/mcp"),),
        )
        reactor = MemoryReactorClock()
        service = GatewayService(config, reactor, log_to_stderr=False, environ=receiver.environ)
        self.addCleanup(service.notifier.close)
        service.privilegedStartService()
        service.startService()
        reactor.advance(0)
        return service, receiver, reactor

    def test_ready_waits_for_the_signing_keys(self) -> None:
        auth = AuthConfig(issuer="http://as.example", audiences=("https://gw.example/mcp",))
        service, receiver, reactor = self.start(auth)
        self.assertEqual(
            receiver.messages(),
            [{"STATUS": "starting"}, {"STATUS": "waiting: signing keys not loaded"}],
        )
        service.readiness.add("signing_keys", lambda: None)  # as the key store would report
        reactor.advance(0.1)
        self.assertEqual(receiver.messages(), [{"READY": "1", "STATUS": "serving on tcp:0"}])
        service.stopService()

    def test_lifecycle(self) -> None:
        service, receiver, _ = self.start()
        self.assertEqual(
            receiver.messages(),
            [{"STATUS": "starting"}, {"READY": "1", "STATUS": "serving on tcp:0"}],
        )
        with capturedLogs() as events:
            service._reload_requested()
        # The config came from no file: the reload is refused, the cycle still completes.
        self.assertEqual("reloading {source}", events[0]["log_format"])
        self.assertEqual(service.reloader.reloads_failed, 1)
        self.assertEqual(
            [("RELOADING" in m, m.get("READY")) for m in receiver.messages()],
            [(True, None), (False, "1")],
        )
        service.stopService()
        self.assertEqual(receiver.messages()[0]["STOPPING"], "1")
