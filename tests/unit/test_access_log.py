"""access_log.AccessLogObserver: gateway events as access-log lines, in every format."""

from __future__ import annotations

import io
import json
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from aigw.access_log import AccessLogObserver
from aigw.config import BackendConfig, Config, LoggingConfig
from aigw.events import (
    AccessDecided,
    AuthenticationRefused,
    RequestFinished,
    ToolFlagged,
    UpstreamConnection,
)
from aigw.logging import build_observer
from aigw.principal import Principal
from aigw.service import GatewayService

TOKEN_ID = "jti-secret-1"
ALICE = Principal(
    "https://as.example",
    "alice",
    "cli",
    frozenset({"mcp"}),
    {"email": "alice@example.com", "jti": TOKEN_ID},
    TOKEN_ID,
    None,
)
CALL = RequestFinished(
    method="tools/call",
    principal=ALICE,
    backend="files",
    name="read_file",
    outcome="error",
    error_code=-32602,
    seconds=0.0125,
    upstream_seconds=0.01,
)
JOURNAL = {"JOURNAL_STREAM": "8:1234"}


def access_log(
    config: LoggingConfig, environ: dict[str, str]
) -> tuple[AccessLogObserver, io.StringIO]:
    """An access log writing through ``build_observer`` to a string."""
    stream = io.StringIO()
    observer = AccessLogObserver()
    observer.log = Logger(
        namespace=observer.log.namespace, observer=build_observer(config, stream, environ)
    )
    return observer, stream


class RequestLineTests(SynchronousTestCase):
    def test_on_its_own_namespace(self) -> None:
        self.assertEqual(AccessLogObserver().log.namespace, "aigw.access")

    def test_json_line_with_named_fields(self) -> None:
        observer, stream = access_log(LoggingConfig(format="json"), {})
        observer.request_finished(CALL)
        (line,) = stream.getvalue().splitlines()
        record = json.loads(line)
        expected = {
            "namespace": "aigw.access",
            "level": "info",
            "event": "request_finished",
            "method": "tools/call",
            "backend": "files",
            "name": "read_file",
            "outcome": "error",
            "error_code": -32602,
            "duration_ms": 12.5,
            "upstream_ms": 10.0,
            "iss": "https://as.example",
            "sub": "alice",
        }
        self.assertEqual({key: record[key] for key in expected}, expected)
        self.assertEqual(
            record["message"],
            "tools/call error in 12.5ms (upstream 10.0ms) backend=files name=read_file "
            "error_code=-32602 sub=alice",
        )

    def test_nothing_of_the_token(self) -> None:
        """Issuer and subject only: no token id, no claims, no scopes."""
        observer, stream = access_log(LoggingConfig(format="json"), {})
        observer.request_finished(CALL)
        record = json.loads(stream.getvalue())
        for secret in (TOKEN_ID, "alice@example.com", '"cli"', '"mcp"'):
            self.assertNotIn(secret, stream.getvalue())
        self.assertNotIn("principal", record)

    def test_journal_line_leaves_out_what_is_missing(self) -> None:
        observer, stream = access_log(LoggingConfig(), JOURNAL)
        observer.request_finished(
            RequestFinished("initialize", None, None, None, "ok", None, 0.002, 0.0)
        )
        self.assertEqual(
            stream.getvalue(), "<6>aigw.access: initialize ok in 2.0ms (upstream 0.0ms)\n"
        )

    def test_json_line_carries_missing_values_as_null(self) -> None:
        observer, stream = access_log(LoggingConfig(format="json"), {})
        observer.request_finished(RequestFinished("ping", None, None, None, "ok", None, 0, 0))
        record = json.loads(stream.getvalue())
        for key in ("backend", "name", "error_code", "iss", "sub"):
            self.assertIsNone(record[key], key)


class OtherEventTests(SynchronousTestCase):
    def lines(self, *events: Any, level: str = "debug") -> list[str]:
        observer, stream = access_log(LoggingConfig(level=level), JOURNAL)  # type: ignore[arg-type]
        for event in events:
            if isinstance(event, AuthenticationRefused):
                observer.authentication_refused(event)
            elif isinstance(event, UpstreamConnection):
                observer.upstream_connection(event)
            elif isinstance(event, ToolFlagged):
                observer.tool_flagged(event)
            else:
                observer.access_decided(event)
        return stream.getvalue().splitlines()

    def test_flagged_tools_warn_with_their_reasons(self) -> None:
        reasons = ("hidden_block in description: '<IMPORTANT>'", "sidenote in x: 'sidenote'")
        event = ToolFlagged("files", "tool", "add", ("hidden_block", "sidenote"), reasons, "warned")
        self.assertEqual(
            self.lines(event),
            [
                "<4>aigw.access: backend files: tool 'add' warned by screening: "
                "hidden_block in description: '<IMPORTANT>'; sidenote in x: 'sidenote'"
            ],
        )

    def test_refusals_at_info(self) -> None:
        self.assertEqual(
            self.lines(AuthenticationRefused(401, "expired")),
            ["<6>aigw.access: authentication refused: expired (HTTP 401)"],
        )

    def test_connections_lost_or_failed_warn_and_opened_is_debug(self) -> None:
        self.assertEqual(
            self.lines(
                UpstreamConnection("files", "opened"),
                UpstreamConnection("files", "lost", "in the body: reset"),
                UpstreamConnection("mail", "failed", "refused"),
            ),
            [
                "<7>aigw.access: upstream files: connection opened",
                "<4>aigw.access: upstream files: connection lost: in the body: reset",
                "<4>aigw.access: upstream mail: connection failed: refused",
            ],
        )

    def test_at_info_opened_connections_are_quiet(self) -> None:
        self.assertEqual(self.lines(UpstreamConnection("files", "opened"), level="info"), [])

    def test_denials_at_debug_with_the_rule_and_allowed_decisions_not_at_all(self) -> None:
        self.assertEqual(
            self.lines(
                AccessDecided(ALICE, "files", "rm", True, "access.rules[0]"),
                AccessDecided(ALICE, "files", "rm", False, "access.rules[1]"),
            ),
            ["<7>aigw.access: access denied by access.rules[1]: sub=alice backend=files name=rm"],
        )


def service(access_log: bool) -> GatewayService:
    config = Config(
        listen=("tcp:0",),
        public_url="https://gw.example",
        mcp_path="/mcp",
        auth=None,
        backends=(BackendConfig(name="files", url="http://127.0.0.1:9/mcp"),),
        logging=LoggingConfig(access_log=access_log),
    )
    return GatewayService(config, MemoryReactorClock(), log_to_stderr=False)


class ServiceWiringTests(SynchronousTestCase):
    """The service registers the access log with its observers when ``logging.access_log``."""

    def written(self, access_log: bool) -> list[dict[str, Any]]:
        """What the access log wrote (to the global log) for one refusal."""
        events: list[dict[str, Any]] = []

        def access(event: dict[str, Any]) -> None:
            if event.get("log_namespace") == "aigw.access":
                events.append(event)

        observers = service(access_log).observers
        globalLogPublisher.addObserver(access)
        self.addCleanup(globalLogPublisher.removeObserver, access)
        observers.authentication_refused(AuthenticationRefused(401, "missing"))
        return events

    def test_registered_when_on(self) -> None:
        (event,) = self.written(True)
        self.assertEqual(event["reason"], "missing")

    def test_not_registered_when_off(self) -> None:
        self.assertEqual(self.written(False), [])
