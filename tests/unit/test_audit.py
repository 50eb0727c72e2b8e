"""audit.AuditTrail and its file: the events alone, then through the real gateway."""

from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path
from typing import Any, Literal

import jwt
from twisted.logger import Logger, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from aigw.audit import NAMESPACE, AuditTrail, audit_bytes, audit_line
from aigw.audit_file import PROBE_INTERVAL
from aigw.config import (
    AccessConfig,
    AccessRule,
    AuditConfig,
    AuthConfig,
    BackendConfig,
    LoggingConfig,
)
from aigw.events import AccessDecided, RequestFinished, ToolFlagged
from aigw.logging import build_observer
from aigw.principal import Principal
from aigw.protocol import jsonrpc
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import (
    ACCEPT,
    GatewayTestCase,
    initialize_message,
    modern,
    routing,
    sse_messages,
)
from tests.unit.memory import run

#: Token-like strings in a principal's claims: none may reach an audit event.
RAW_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2VjcmV0LXNpZ25hdHVyZQ"
TOKEN_ID = "jti-7f3e"
ALICE = Principal(
    "https://as.example",
    "alice",
    "cli-1",
    frozenset({"mcp"}),
    {"sub": "alice", "jti": TOKEN_ID, "act": {"token": RAW_TOKEN}, "email": "alice@example.com"},
    TOKEN_ID,
    None,
)


def decided(allowed: bool, rule: str, number: int = 7) -> AccessDecided:
    return AccessDecided(
        ALICE,
        "files",
        "read",
        allowed,
        rule,
        method="tools/call",
        request_id=number,
        exposed="files__read",
    )


def finished(method: str = "tools/call", number: int = 7, **values: Any) -> RequestFinished:
    fields: dict[str, Any] = {
        "method": method,
        "principal": ALICE,
        "backend": "files",
        "name": "read",
        "outcome": "ok",
        "error_code": None,
        "seconds": 0.0125,
        "upstream_seconds": 0.01,
        "request_id": number,
        "exposed": "files__read",
        "arguments": {"path": "/etc/motd"},
    }
    fields.update(values)
    return RequestFinished(**fields)


def recorded(trail: AuditTrail) -> list[dict[str, Any]]:
    """Point ``trail`` at a list; the list of log events it writes."""
    events: list[dict[str, Any]] = []
    trail.log = Logger(namespace=trail.log.namespace, observer=events.append)
    return events


def own_fields(event: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in event.items() if not key.startswith("log_")}


class TrailTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.trail = AuditTrail()
        self.events = recorded(self.trail)

    def test_a_decision_names_who_what_and_the_rule(self) -> None:
        self.trail.access_decided(decided(True, "access.rules[0]"))
        self.trail.access_decided(decided(False, "access.default", number=8))
        allowed, denied = self.events
        self.assertEqual(allowed["log_namespace"], NAMESPACE)
        self.assertEqual(allowed["log_level"].name, "info")
        self.assertEqual(
            own_fields(allowed),
            {
                "event": "access_decided",
                "request_id": f"{self.trail.instance}-7",
                "issuer": "https://as.example",
                "sub": "alice",
                "client_id": "cli-1",
                "method": "tools/call",
                "exposed": "files__read",
                "backend": "files",
                "name": "read",
                "decision": "allowed",
                "rule": "access.rules[0]",
            },
        )
        self.assertEqual((denied["decision"], denied["rule"]), ("denied", "access.default"))

    def test_a_finished_call_says_its_outcome_and_duration_without_arguments(self) -> None:
        self.trail.request_finished(finished(outcome="denied", error_code=-32602))
        [event] = self.events
        expected = {
            "event": "request_finished",
            "request_id": f"{self.trail.instance}-7",
            "issuer": "https://as.example",
            "sub": "alice",
            "client_id": "cli-1",
            "method": "tools/call",
            "exposed": "files__read",
            "backend": "files",
            "name": "read",
            "outcome": "denied",
            "error_code": -32602,
            "duration_ms": 12.5,
            "upstream_ms": 10.0,
        }
        self.assertEqual(own_fields(event), expected)

    def test_arguments_only_when_asked_for(self) -> None:
        trail = AuditTrail(include_arguments=True)
        events = recorded(trail)
        trail.request_finished(finished())
        self.assertEqual(events[0]["arguments"], {"path": "/etc/motd"})

    def test_the_decision_and_the_end_of_one_request_share_its_id(self) -> None:
        self.trail.access_decided(decided(True, "access.default", number=3))
        self.trail.request_finished(finished(number=3))
        self.trail.request_finished(finished(number=4))
        ids = [event["request_id"] for event in self.events]
        self.assertEqual(ids[0], ids[1])
        self.assertNotEqual(ids[1], ids[2])
        self.assertNotEqual(AuditTrail().instance, self.trail.instance)

    def test_prompts_and_resources_are_audited_lists_and_the_rest_are_not(self) -> None:
        for method in ("prompts/get", "resources/read", "tools/list", "initialize", "ping"):
            self.trail.request_finished(finished(method))
        self.assertEqual(
            [event["method"] for event in self.events], ["prompts/get", "resources/read"]
        )

    def test_a_flagged_tool_says_what_was_found_and_what_was_done(self) -> None:
        reasons = ("hidden_unicode in description: tag characters (U+E0041)",)
        self.trail.tool_flagged(
            ToolFlagged("files", "tool", "add", ("hidden_unicode",), reasons, "blocked")
        )
        [event] = self.events
        record = json.loads(audit_line(event))
        del record["time"]
        self.assertEqual(
            record,
            {
                "event": "tool_flagged",
                "backend": "files",
                "name": "add",
                "kind": "tool",
                "action": "blocked",
                "checks": ["hidden_unicode"],
                "reasons": list(reasons),
                "by": "screening",
            },
        )

    def test_nothing_of_the_token(self) -> None:
        trail = AuditTrail(include_arguments=True)
        events = recorded(trail)
        trail.access_decided(decided(False, "access.rules[1]"))
        trail.request_finished(finished())
        written = "".join(audit_line(event) for event in events)
        for secret in (RAW_TOKEN, TOKEN_ID, "alice@example.com", '"mcp"'):
            self.assertNotIn(secret, written)

    def test_the_journal_gets_a_readable_line_at_info(self) -> None:
        stream = io.StringIO()
        self.trail.log = Logger(
            namespace=NAMESPACE,
            observer=build_observer(LoggingConfig(), stream, {"JOURNAL_STREAM": "8:1"}),
        )
        self.trail.access_decided(decided(False, "access.rules[1]"))
        self.trail.request_finished(finished(outcome="denied"))
        request = f"(request {self.trail.instance}-7)"
        self.assertEqual(
            stream.getvalue().splitlines(),
            [
                "<6>aigw.audit: access denied by access.rules[1]: tools/call files__read "
                f"for sub=alice client_id=cli-1 {request}",
                "<6>aigw.audit: tools/call files__read denied in 12.5ms: sub=alice "
                f"client_id=cli-1 {request}",
            ],
        )


class LineTests(SynchronousTestCase):
    def test_time_first_in_rfc3339_utc_then_the_fields(self) -> None:
        events: list[dict[str, Any]] = []
        Logger(namespace=NAMESPACE, observer=events.append).info(
            "x {sub}", sub="alice", event="access_decided"
        )
        # What Twisted's legacy observers add to an event they see is not the trail's.
        events[0].update(log_time=1_800_000_000.25, time=1.0, system="-", isError=0)
        line = audit_line(events[0])
        self.assertTrue(line.endswith("}\n") and line.count("\n") == 1)
        self.assertEqual(
            list(json.loads(line).items()),
            [("time", "2027-01-15T08:00:00.250Z"), ("event", "access_decided"), ("sub", "alice")],
        )

    def test_every_line_is_utf8_whatever_a_client_sent(self) -> None:
        """Lone surrogates (``"\\ud800"`` in a client's JSON, which ``jsonrpc.loads``
        reads) have no UTF-8: the line escapes its non-ASCII characters instead of
        failing, and reads back as the event.  Before, the encoding raised inside the
        log publisher (a traceback) and the event was not written: a client could keep
        its calls out of the trail."""
        events: list[dict[str, Any]] = []
        Logger(namespace=NAMESPACE, observer=events.append).info(
            "x", event="access_decided", exposed="py__ech\ud800", arguments={"q": "é\udfff"}
        )
        events[0].update(log_time=1_800_000_000.25)
        line = audit_bytes(events[0])
        self.assertTrue(line.isascii() and line.endswith(b"}\n"))
        record = json.loads(line)
        self.assertEqual(record["exposed"], "py__ech\ud800")
        self.assertEqual(record["arguments"], {"q": "é\udfff"})
        # Lines UTF-8 can hold are written as they are, non-ASCII included.
        events[0].update(exposed="py__échō", arguments={})
        self.assertIn("py__échō".encode(), audit_bytes(events[0]))


SECRET = b"s" * 32
ISSUER = "https://as.example"


class GatewayAuditTests(GatewayTestCase):
    """The real gateway with the audit trail and file, on the memory network."""

    def setUp(self) -> None:
        super().setUp()
        self.audit_file = Path(self.mktemp()).resolve()

    async def start_audited(
        self,
        include_arguments: bool = False,
        beta_scopes: tuple[str, ...] = (),
        file: str | None = None,
        on_write_error: Literal["log", "refuse"] = "log",
    ) -> None:
        self.events: list[dict[str, Any]] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_namespace") == NAMESPACE:
                self.events.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        rules = (
            AccessRule("allow", subjects=("alice",), backends=("alpha",), tools=("echo",)),
            AccessRule("deny", backends=("alpha",)),
        )
        self.alpha = FakeUpstream(tools=["echo", "progress"])
        backends = (
            BackendConfig(name="alpha", url=self.start_upstream(self.alpha), timeout=5.0),
            BackendConfig(
                name="beta",
                url=self.start_upstream(FakeUpstream(tools=["t0"])),
                timeout=5.0,
                required_scopes=beta_scopes,
            ),
        )
        await self.start_gateway_with(
            *backends,
            auth=AuthConfig(
                issuer=ISSUER,
                audiences=("http://127.0.0.1:1975/mcp",),
                algorithms=("HS256",),
                shared_secret=SECRET,
                relay_authorization_server_metadata=False,
            ),
            access=AccessConfig(rules=rules),
            audit=AuditConfig(
                file=file or str(self.audit_file),
                include_arguments=include_arguments,
                on_write_error=on_write_error,
            ),
        )
        now = int(self.reactor.seconds())
        claims = {
            "iss": ISSUER,
            "aud": "http://127.0.0.1:1975/mcp",
            "sub": "alice",
            "client_id": "client-1",
            "scope": "mcp",
            "jti": TOKEN_ID,
            "upstream_token": RAW_TOKEN,
            "iat": now - 10,
            "exp": now + 3600,
        }
        self.token = jwt.encode(claims, SECRET, "HS256")
        self.headers = {"Authorization": f"Bearer {self.token}"}
        response, body = await self.post(initialize_message(), headers=self.headers)
        self.assertEqual(response.code, 200, body)
        self.session = response.headers.getRawHeaders(b"mcp-session-id")[0].decode()

    async def ask(self, method: str, params: dict[str, Any], rid: int = 1) -> Any:
        message = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
        headers = {**self.headers, "Accept": ACCEPT, "MCP-Protocol-Version": "2025-11-25"}
        response, body = await self.post(message, self.session, headers)
        self.assertEqual(response.code, 200, body)
        return sse_messages(body)[-1] if isinstance(body, bytes) else body

    def written(self, path: Path | None = None) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (path or self.audit_file).read_text().splitlines()]

    @run
    async def test_allowed_and_denied_calls_carry_the_deciding_rule(self) -> None:
        await self.start_audited()
        allowed = await self.ask("tools/call", {"name": "alpha__echo", "arguments": {"q": 1}})
        self.assertIn("result", allowed)
        denied = await self.ask("tools/call", {"name": "alpha__progress", "arguments": {}}, 2)
        self.assertIn("error", denied)
        lines = self.written()
        self.assertEqual(
            [
                (line["event"], line["exposed"], line.get("decision"), line.get("rule"))
                for line in lines
            ],
            [
                ("access_decided", "alpha__echo", "allowed", "access.rules[0]"),
                ("request_finished", "alpha__echo", None, None),
                ("access_decided", "alpha__progress", "denied", "access.rules[1]"),
                ("request_finished", "alpha__progress", None, None),
            ],
        )
        self.assertEqual([line.get("outcome") for line in lines[1::2]], ["ok", "denied"])
        self.assertEqual(lines[0]["request_id"], lines[1]["request_id"])
        self.assertEqual(lines[2]["request_id"], lines[3]["request_id"])
        self.assertNotEqual(lines[0]["request_id"], lines[2]["request_id"])
        for line in lines:
            self.assertEqual(
                (line["issuer"], line["sub"], line["client_id"], line["method"], line["backend"]),
                (ISSUER, "alice", "client-1", "tools/call", "alpha"),
            )
            self.assertTrue(line["time"].endswith("Z"))
            self.assertNotIn("arguments", line)
        self.assertIsInstance(lines[1]["duration_ms"], float)
        self.assertEqual(lines[3]["error_code"], -32602)
        # The same events on the log's namespace, for the journal.
        self.assertEqual(len(self.events), 4)

    @run
    async def test_prompts_and_resources_are_audited_and_lists_are_not(self) -> None:
        await self.start_audited()
        await self.ask("tools/list", {})
        await self.ask("prompts/get", {"name": "beta__greet", "arguments": {"who": "x"}}, 2)
        await self.ask("resources/read", {"uri": "aigw:beta/file:///notes"}, 3)
        self.assertEqual(
            [(line["event"], line["method"], line["exposed"]) for line in self.written()],
            [
                ("access_decided", "prompts/get", "beta__greet"),
                ("request_finished", "prompts/get", "beta__greet"),
                ("access_decided", "resources/read", "aigw:beta/file:///notes"),
                ("request_finished", "resources/read", "aigw:beta/file:///notes"),
            ],
        )
        self.assertEqual({line.get("rule") for line in self.written()}, {None, "access.default"})

    @run
    async def test_arguments_with_include_arguments_and_never_the_token(self) -> None:
        await self.start_audited(include_arguments=True)
        await self.ask("tools/call", {"name": "alpha__echo", "arguments": {"q": 1}})
        await self.ask("prompts/get", {"name": "beta__greet", "arguments": {"who": "x"}}, 2)
        finished = [line for line in self.written() if line["event"] == "request_finished"]
        self.assertEqual([line["arguments"] for line in finished], [{"q": 1}, {"who": "x"}])
        text = "".join(json.dumps(line) for line in self.written())
        logged = json.dumps([own_fields(event) for event in self.events], default=str)
        for secret in (self.token, RAW_TOKEN, TOKEN_ID, "Bearer"):
            self.assertNotIn(secret, text)
            self.assertNotIn(secret, logged)

    @run
    async def test_a_scope_step_up_names_the_backend_requirement(self) -> None:
        await self.start_audited(beta_scopes=("admin",))
        message = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "beta__t0"},
        }
        headers = {**self.headers, "Accept": ACCEPT, "MCP-Protocol-Version": "2025-11-25"}
        response, _ = await self.post(message, self.session, headers)
        self.assertEqual(response.code, 403)
        self.assertEqual(
            [
                (line["event"], line.get("decision"), line.get("rule"), line.get("outcome"))
                for line in self.written()
            ],
            [
                ("access_decided", "denied", "backends[1].required_scopes", None),
                ("request_finished", None, None, "denied"),
            ],
        )

    def calls_received(self) -> list[str]:
        return [
            body.get("params", {}).get("name")
            for _, body in self.alpha.received
            if isinstance(body, dict) and body.get("method") == "tools/call"
        ]

    async def call(self, rid: int) -> tuple[Any, Any]:
        message = {
            "jsonrpc": "2.0",
            "id": rid,
            "method": "tools/call",
            "params": {"name": "alpha__echo", "arguments": {"q": rid}},
        }
        headers = {**self.headers, "Accept": ACCEPT, "MCP-Protocol-Version": "2025-11-25"}
        return await self.post(message, self.session, headers)

    @run
    async def test_a_file_that_cannot_be_written_leaves_calls_answered_by_default(self) -> None:
        await self.start_audited(file="/dev/full")
        answer = await self.ask("tools/call", {"name": "alpha__echo", "arguments": {"q": 1}})
        self.assertIn("result", answer)
        audit_file = self.service.audit_file
        assert audit_file is not None
        self.assertEqual(audit_file.errors, 2)  # the decision and the end
        self.assertTrue(self.service.readiness.report()[0])

    @run
    async def test_refuse_keeps_unaudited_calls_from_their_backend(self) -> None:
        """Fail closed: the call whose decision finds the file failing is refused before
        its backend sees it, the next ones before anything else; 503, Retry-After, and
        a JSON-RPC error saying why; not ready."""
        await self.start_audited(file="/dev/full", on_write_error="refuse")
        self.assertTrue(self.service.readiness.report()[0])
        for rid in (1, 2):
            response, body = await self.call(rid)
            self.assertEqual(response.code, 503, body)
            self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"5"])
            self.assertEqual(body["id"], rid)
            self.assertEqual(body["error"]["code"], jsonrpc.AUDIT_UNAVAILABLE)
            self.assertIn("audit trail is unavailable", body["error"]["message"])
            self.assertEqual(
                body["error"]["data"]["reason"],
                "cannot write the audit file /dev/full: No space left on device",
            )
        self.assertEqual(self.calls_received(), [])
        ready, checks = self.service.readiness.report()
        self.assertFalse(ready)
        self.assertIn("No space left on device", checks["audit_file"])
        listed = await self.ask("tools/list", {}, 3)  # not audited: served
        self.assertIn("result", listed)

    @run
    async def test_refuse_answers_the_2026_era_with_the_clients_id(self) -> None:
        await self.start_audited(file="/dev/full", on_write_error="refuse")
        message = modern("tools/call", {"name": "alpha__echo", "arguments": {}}, "m-2")
        headers = {**self.headers, **routing("tools/call", "alpha__echo")}
        response, body = await self.post(message, headers=headers)
        self.assertEqual(response.code, 503, body)
        self.assertEqual(body["id"], "m-2")
        self.assertEqual(body["error"]["code"], jsonrpc.AUDIT_UNAVAILABLE)
        self.assertEqual(self.calls_received(), [])

    @run
    async def test_refuse_ends_by_itself_once_the_file_takes_writes(self) -> None:
        await self.start_audited(on_write_error="refuse")
        audit_file = self.service.audit_file
        assert audit_file is not None
        assert audit_file.writer is not None
        written = audit_file.writer.write_bytes

        def failing(descriptor: int, data: bytes) -> int:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        audit_file.writer.write_bytes = failing
        response, _ = await self.call(1)
        self.assertEqual(response.code, 503)
        audit_file.writer.write_bytes = written
        self.reactor.advance(PROBE_INTERVAL)
        self.assertTrue(self.service.readiness.report()[0])
        answer = await self.ask("tools/call", {"name": "alpha__echo", "arguments": {"q": 2}}, 2)
        self.assertIn("result", answer)
        self.assertEqual(self.calls_received(), ["echo"])
        # The refused call's events, held meanwhile, then the served one's, in order.
        self.assertEqual(
            [(line["event"], line.get("outcome")) for line in self.written()],
            [
                ("access_decided", None),
                ("request_finished", "refused"),
                ("access_decided", None),
                ("request_finished", "ok"),
            ],
        )

    @run
    async def test_sighup_reopens_the_file_after_rotation(self) -> None:
        await self.start_audited()
        await self.ask("tools/call", {"name": "alpha__echo", "arguments": {"q": 1}})
        rotated = Path(f"{self.audit_file}.1")
        self.audit_file.rename(rotated)
        self.service._reload_requested()
        await self.ask("tools/call", {"name": "alpha__echo", "arguments": {"q": 2}}, 2)
        old = [line["event"] for line in self.written(rotated)]
        self.assertEqual(old, ["access_decided", "request_finished"])
        self.assertEqual(
            [line["event"] for line in self.written()], ["access_decided", "request_finished"]
        )

    @run
    async def test_sigusr1_reopens_the_file_and_reloads_nothing(self) -> None:
        """What logrotate's postrotate sends (debian/aigw.logrotate)."""
        await self.start_audited()
        await self.ask("tools/call", {"name": "alpha__echo", "arguments": {"q": 1}})
        rotated = Path(f"{self.audit_file}.1")
        self.audit_file.rename(rotated)
        reloads: list[object] = []
        self.patch(self.service.reloader, "reload", lambda: reloads.append(None))
        self.service._reopen_requested()
        await self.ask("tools/call", {"name": "alpha__echo", "arguments": {"q": 2}}, 2)
        self.assertEqual(reloads, [])
        self.assertEqual(
            [line["event"] for line in self.written(rotated)],
            ["access_decided", "request_finished"],
        )
        self.assertEqual(
            [line["event"] for line in self.written()], ["access_decided", "request_finished"]
        )

    @run
    async def test_with_no_file_a_log_above_info_leaves_no_trail(self) -> None:
        """Every audit event is info: with no file and logging.level warn, none would be
        recorded, so the trail is not built at all (it would cost two events a call)."""
        await self.start_gateway(
            audit=AuditConfig(include_arguments=True), logging=LoggingConfig(level="warn")
        )
        self.assertIsNone(self.service.audit_trail)
        self.assertFalse(any(isinstance(o, AuditTrail) for o in self.service.observers._observers))
        self.assertFalse(self.service.gateway.calls.record_arguments)

    @run
    async def test_with_a_file_the_trail_is_kept_whatever_the_log_level(self) -> None:
        await self.start_gateway(
            audit=AuditConfig(file=str(self.mktemp())), logging=LoggingConfig(level="error")
        )
        self.assertIsNotNone(self.service.audit_trail)

    @run
    async def test_off_leaves_no_trail_and_records_no_arguments(self) -> None:
        await self.start_gateway(audit=AuditConfig(enabled=False, include_arguments=True))
        self.assertFalse(any(isinstance(o, AuditTrail) for o in self.service.observers._observers))
        self.assertFalse(self.service.gateway.calls.record_arguments)
