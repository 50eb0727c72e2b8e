"""A client's hostile strings through a real aigw, the MCP SDK's server behind it:
nothing it writes makes a line of its own in the process log (docs/security.md,
"What a client writes, in the logs, the trail and the spans")."""

from __future__ import annotations

import json

import httpx2

from .aigw import start_gateway
from .harness.upstreams import Upstream
from .test_audit import session_of

#: What a forged access line would say.
FORGED = "2026-12-02T12:00:00+0000 [aigw.access#info] tools/call ok name=py__echo sub=forged"


def test_a_client_cannot_write_a_line_of_its_own_in_the_log(pyserver: Upstream) -> None:
    """A tool name, a method and an argument holding line breaks (CR, LF, U+2028, a
    lone surrogate beside): each answer is JSON-RPC, and the log shows each value on
    its own line, escaped; before, the text format wrote CR as it came (and the
    journal format split the value into entries of their own, aigw's priority and
    namespace on each: a forged access line)."""
    gateway = start_gateway([("py", pyserver.url)], log_level="info")
    try:
        headers = session_of(gateway)
        hostile = f"\r\n{FORGED}\r{FORGED}\u2028{FORGED}\ud800"
        for rid, (method, params) in enumerate(
            (
                ("tools/call", {"name": f"py__echo{hostile}", "arguments": {}}),
                (f"tools/call{hostile}", {"name": "py__echo", "arguments": {}}),
                ("prompts/get", {"name": f"py__x{hostile}"}),
                ("resources/read", {"uri": f"aigw:py/file:///{hostile}"}),
            )
        ):
            message = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
            body = json.dumps(message).encode("ascii")
            answer = httpx2.post(gateway.url, content=body, headers=headers, timeout=20)
            assert answer.status_code == 200, answer.text
            # -32010: the SDK's parser refuses the lone surrogate aigw relays (HTTP 400,
            # -32700 in data.detail); aigw refuses the rest itself.
            assert answer.json()["error"]["code"] in (-32601, -32602, -32010), answer.text
        answer = httpx2.post(
            gateway.url,
            json={
                "jsonrpc": "2.0",
                "id": 9,
                "method": "tools/call",
                "params": {"name": "py__echo", "arguments": {"text": "still here"}},
            },
            headers=headers,
            timeout=20,
        )
        assert "still here" in answer.text
        log = gateway.process.log_path.read_bytes()
        assert b"\r" not in log, gateway.process.log_tail()
        assert "\u2028".encode() not in log, gateway.process.log_tail()
        told = [line for line in log.split(b"\n") if b"sub=forged" in line]
        assert len(told) >= 4, gateway.process.log_tail()
        for line in told:
            assert line.count(b"sub=forged") == 3, line
            for escaped in (b"\\r\\n2026-12-02", b"\\u2028", b"\\ud800"):
                assert escaped in line, line
        assert b"Traceback" not in log, gateway.process.log_tail()
    finally:
        gateway.stop()
