"""The audit trail end to end: the real daemon, authorization server, SDK client and upstream.

Issue 12 item 2: one event per authorization decision and per tool call, with the
rule that decided, in the ``audit.file`` as JSON lines; never token contents.
The file under faults (``audit_file.py``): ``/dev/full`` (every write ENOSPC) with
``audit.on_write_error`` ``log`` and ``refuse``; rotation by logrotate's ``create``
(the file moved away, SIGHUP, a new file).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from .aigw import INITIALIZE, MCP_HEADERS, Gateway, post_json, signal_reload, start_gateway
from .harness.authserver import AuthServer
from .harness.oauth_client import MemoryTokenStorage, connect
from .harness.results import text_of
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

#: The packaged logrotate rules (installed as /etc/logrotate.d/aigw).
LOGROTATE = Path(__file__).resolve().parents[2] / "debian" / "aigw.logrotate"

ACCESS = """\
access:
  default: allow
  rules:
    - effect: allow
      subjects: [alice]
      tools: [echo]
    - effect: deny
      tools: [whoami-headers]
audit:
  file: audit.log
"""


@pytest.fixture(scope="module")
def gateway(auth_server: AuthServer, pyserver: Upstream) -> Iterator[Gateway]:
    started = start_gateway(
        [("py", pyserver.url)], issuer=auth_server.issuer, extra=ACCESS, log_format="json"
    )
    try:
        yield started
    finally:
        started.stop()


def audit_text(gateway: Gateway) -> str:
    """The audit file (``audit.log`` next to the config: relative names are read so)."""
    return Path(os.path.dirname(gateway.config_path), "audit.log").read_text()


def audit_lines(gateway: Gateway, count: int) -> list[dict[str, Any]]:
    """The audit file's events, once it holds ``count`` of them.

    Each event is written before the answer it belongs to is sent, so they are all
    there already; the bounded wait only keeps a slow disk from failing the test."""
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in audit_text(gateway).splitlines()]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


async def test_allowed_and_denied_calls_carry_the_deciding_rule(
    gateway: Gateway, auth_server: AuthServer
) -> None:
    storage = MemoryTokenStorage()
    async with connect(gateway.url, "alice", storage=storage, mode="legacy") as client:
        result = await client.call_tool("py__echo", {"text": "audited"})
        assert text_of(result) == "audited"
        with pytest.raises(Exception, match="not allowed"):
            await client.call_tool("py__whoami-headers", {})
    client_info = await storage.get_client_info()
    tokens = await storage.get_tokens()
    assert client_info is not None
    assert tokens is not None

    lines = audit_lines(gateway, 4)
    assert [
        (
            line["event"],
            line["exposed"],
            line.get("decision"),
            line.get("rule"),
            line.get("outcome"),
        )
        for line in lines
    ] == [
        ("access_decided", "py__echo", "allowed", "access.rules[0]", None),
        ("request_finished", "py__echo", None, None, "ok"),
        ("access_decided", "py__whoami-headers", "denied", "access.rules[1]", None),
        ("request_finished", "py__whoami-headers", None, None, "denied"),
    ]
    for line in lines:
        assert (line["sub"], line["client_id"], line["method"], line["backend"]) == (
            "alice",
            client_info.client_id,
            "tools/call",
            "py",
        )
        assert line["issuer"].rstrip("/") == auth_server.issuer.rstrip("/")
        assert line["time"].endswith("Z")
        assert "arguments" not in line
    assert lines[0]["request_id"] == lines[1]["request_id"] != lines[2]["request_id"]
    assert lines[2]["request_id"] == lines[3]["request_id"]
    assert lines[1]["duration_ms"] > 0
    written = audit_text(gateway)
    assert tokens.access_token not in written
    assert tokens.access_token.split(".")[1] not in written  # not even the payload
    journal = gateway.process.log()
    assert tokens.access_token.split(".")[1] not in journal
    assert_logged_as_json(journal, lines)


def assert_logged_as_json(log: str, audited: list[dict[str, Any]]) -> None:
    """``logging.format: json``: one object per line; the audit events are there too on
    ``aigw.audit``, and the access log (``logging.access_log``, on by default) has each
    call on ``aigw.access`` with who made it, as issuer and subject only."""
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert records, log[-2000:]
    assert all({"time", "level", "namespace", "message"} <= set(r) for r in records)
    in_log = [r for r in records if r["namespace"] == "aigw.audit"]
    assert [(r["event"], r["request_id"]) for r in in_log if r.get("method") == "tools/call"] == [
        (line["event"], line["request_id"]) for line in audited
    ]
    calls = [
        r
        for r in records
        if r["namespace"] == "aigw.access"
        and r.get("event") == "request_finished"
        and r.get("method") == "tools/call"
    ]
    assert [(r["name"], r["outcome"], r["sub"]) for r in calls] == [
        ("echo", "ok", "alice"),
        ("whoami-headers", "denied", "alice"),
    ], calls


def echo(rid: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "tools/call",
        "params": {"name": "py__echo", "arguments": {"text": f"call {rid}"}},
    }


def session_of(gateway: Gateway) -> dict[str, str]:
    status, found, body = post_json(gateway.url, MCP_HEADERS, INITIALIZE)
    assert status == 200, body
    return {**MCP_HEADERS, "Mcp-Session-Id": found["mcp-session-id"]}


def test_a_client_cannot_keep_its_calls_out_of_the_trail_with_lone_surrogates(
    pyserver: Upstream,
) -> None:
    """``"\\ud800"`` is valid JSON text but no UTF-8: in a tool name or an argument
    (with ``include_arguments``) it made the line's encoding raise, so the call's events
    were not written (a traceback instead); now each is a line, escaped."""
    gateway = start_gateway(
        [("py", pyserver.url)],
        extra="audit:\n  file: audit.log\n  include_arguments: true\n",
        log_level="info",
    )
    try:
        headers = session_of(gateway)
        for body in (
            b'{"jsonrpc":"2.0","id":2,"method":"tools/call",'
            b'"params":{"name":"py__echo","arguments":{"text":"a\\ud800b"}}}',
            b'{"jsonrpc":"2.0","id":3,"method":"tools/call",'
            b'"params":{"name":"py__ech\\udfff","arguments":{}}}',
        ):
            answer = httpx2.post(gateway.url, content=body, headers=headers, timeout=20)
            assert answer.status_code == 200, answer.text
        lines = audit_lines(gateway, 4)
        assert [(line["event"], line["exposed"]) for line in lines] == [
            ("access_decided", "py__echo"),
            ("request_finished", "py__echo"),
            ("access_decided", "py__ech\udfff"),
            ("request_finished", "py__ech\udfff"),
        ]
        assert lines[1]["arguments"] == {"text": "a\ud800b"}
        log = gateway.process.log()
        assert "Traceback" not in log, gateway.process.log_tail()
        assert "Temporarily disabling observer" not in log
    finally:
        gateway.stop()


@pytest.fixture
def unwritable(pyserver: Upstream) -> Iterator[Gateway]:
    """A gateway whose audit file is /dev/full: every write fails with ENOSPC."""
    started = start_gateway(
        [("py", pyserver.url)], metrics=True, extra="audit:\n  file: /dev/full\n"
    )
    try:
        yield started
    finally:
        started.stop()


def test_a_full_disk_leaves_calls_answered_counted_and_one_warning(unwritable: Gateway) -> None:
    """``on_write_error: log`` (the default): the calls are served; each event lost is
    counted; the log has one warning naming the file and the error, no traceback."""
    headers = session_of(unwritable)
    for rid in (2, 3, 4):
        status, _, body = post_json(unwritable.url, headers, echo(rid))
        assert status == 200, body
        assert body["result"]["content"][0]["text"] == f"call {rid}"
    assert unwritable.metric("aigw_audit_write_errors_total") == 6.0
    assert unwritable.metric("aigw_audit_file_writable") == 0.0
    log = unwritable.process.log()
    assert log.count("cannot write the audit file /dev/full: No space left on device") == 1, log
    assert "Traceback" not in log
    assert "Temporarily disabling observer" not in log
    assert httpx2.get(unwritable.base + "/readyz", timeout=10).status_code == 200


@pytest.fixture
def refusing(pyserver: Upstream) -> Iterator[Gateway]:
    started = start_gateway(
        [("py", pyserver.url)],
        extra="audit:\n  file: /dev/full\n  on_write_error: refuse\n",
    )
    try:
        yield started
    finally:
        started.stop()


def test_refuse_answers_audited_calls_503_and_is_not_ready(refusing: Gateway) -> None:
    """``on_write_error: refuse``: fail closed; a call is refused with 503, Retry-After
    and a JSON-RPC error saying the audit trail is unavailable; /readyz says why."""
    headers = session_of(refusing)
    for rid in (2, 3):
        status, found, body = post_json(refusing.url, headers, echo(rid))
        assert status == 503, body
        assert int(found["retry-after"]) >= 1
        assert body["id"] == rid
        assert body["error"]["code"] == -32017
        assert "audit trail is unavailable" in body["error"]["message"]
        assert "No space left on device" in body["error"]["data"]["reason"]
    ready = httpx2.get(refusing.base + "/readyz", timeout=10)
    assert ready.status_code == 503
    assert ready.json()["checks"]["audit_file"] == (
        "cannot write the audit file /dev/full: No space left on device"
    )
    listed = post_json(refusing.url, headers, {"jsonrpc": "2.0", "id": 4, "method": "tools/list"})
    assert listed[0] == 200, listed  # not audited: served
    assert "Traceback" not in refusing.process.log()


def test_sighup_reopens_the_file_logrotate_moved_away(pyserver: Upstream) -> None:
    """logrotate's ``create`` then ``postrotate`` reload: the old file keeps what it
    had, the next events land in a new file (mode 0640).  This gateway has
    ``audit.include_arguments``: each call's end holds its arguments."""
    gateway = start_gateway(
        [("py", pyserver.url)],
        extra="audit:\n  file: audit.log\n  include_arguments: true\n",
    )
    try:
        headers = session_of(gateway)
        assert post_json(gateway.url, headers, echo(2))[0] == 200
        path = Path(os.path.dirname(gateway.config_path), "audit.log")
        before = audit_lines(gateway, 2)
        rotated = path.with_name("audit.log.1")
        path.rename(rotated)
        signal_reload(gateway)
        assert post_json(gateway.url, headers, echo(3))[0] == 200
        after = audit_lines(gateway, 2)
        assert [line["event"] for line in after] == ["access_decided", "request_finished"]
        assert before[1]["arguments"] == {"text": "call 2"}
        assert after[1]["arguments"] == {"text": "call 3"}
        assert after[0]["request_id"] != before[0]["request_id"]
        assert rotated.read_text().splitlines() == [
            json.dumps(line, ensure_ascii=False, separators=(",", ":")) for line in before
        ]
        assert os.stat(path).st_mode & 0o777 & ~0o640 == 0
        assert "reopened the audit file" in gateway.process.log()
    finally:
        gateway.stop()


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="logrotate is not installed")
def test_the_packaged_logrotate_rules_rotate_without_losing_a_line(
    pyserver: Upstream, tmp_path: Path
) -> None:
    """The real logrotate with debian/aigw.logrotate, its paths and owner made this
    test's, and its postrotate sending SIGUSR1 to this aigw (as its ``systemctl kill
    --signal=USR1``): the file is reopened, and the config is not read again."""
    gateway = start_gateway([("py", pyserver.url)], extra="audit:\n  file: audit.log\n")
    try:
        directory = os.path.dirname(gateway.config_path)
        rules = LOGROTATE.read_text().replace("/var/log/aigw/", f"{directory}/")
        rules = rules.replace("create 0640 aigw aigw", "create 0640")
        rules = re.sub(
            r"postrotate\n.*?endscript",
            f"postrotate\n        kill -USR1 {gateway.process.pid}\n    endscript",
            rules,
            flags=re.S,
        )
        config = tmp_path / "logrotate.conf"
        config.write_text(rules)
        headers = session_of(gateway)
        assert post_json(gateway.url, headers, echo(2))[0] == 200
        before = audit_text(gateway)
        subprocess.run(
            ["logrotate", "--force", "--state", str(tmp_path / "state"), str(config)],
            check=True,
            timeout=30,
        )
        deadline = time.monotonic() + 10
        while "reopened the audit file" not in gateway.process.log():
            assert time.monotonic() < deadline, gateway.process.log_tail()
            time.sleep(0.05)
        assert "reloading" not in gateway.process.log(), gateway.process.log_tail()
        assert post_json(gateway.url, headers, echo(3))[0] == 200
        assert Path(directory, "audit.log.1").read_text() == before  # delaycompress
        assert [line["exposed"] for line in audit_lines(gateway, 2)] == ["py__echo"] * 2
        assert [line["event"] for line in audit_lines(gateway, 2)] == [
            "access_decided",
            "request_finished",
        ]
    finally:
        gateway.stop()
