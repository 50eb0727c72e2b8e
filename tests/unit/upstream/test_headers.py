"""The reserved header list covers every header aigw writes on an upstream request."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import BackendConfig
from aigw.protocol.revision import routing_headers
from aigw.tracing.context import TraceContext
from aigw.upstream.client import Upstream
from aigw.upstream.headers import RESERVED_HEADERS, is_reserved


def names_in(head: bytes) -> list[str]:
    """The header names of a request head (the request line left out)."""
    lines = head.decode("latin-1").split("\r\n")[1:]
    return [line.split(":", 1)[0] for line in lines if line]


class ReservedHeaderTests(SynchronousTestCase):
    def test_every_header_the_client_writes_is_reserved(self) -> None:
        upstream = Upstream(BackendConfig("one", "http://127.0.0.1:3001/mcp"), MemoryReactorClock())
        extra = {
            **routing_headers("tools/call", {"name": "search"}),
            b"Mcp-Param-Region": b"eu",
            b"Last-Event-ID": b"7",
        }
        TraceContext(
            "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01", "a=1"
        ).add_headers(extra)
        head = upstream._head([], b"POST", "session", "2025-11-25", b"*/*", b"{}", extra)
        written = names_in(head)
        self.assertEqual(len(written), 12, written)
        self.assertEqual([name for name in written if not is_reserved(name)], [])

    def test_names_are_lower_case(self) -> None:
        self.assertEqual({name.lower() for name in RESERVED_HEADERS}, RESERVED_HEADERS)

    def test_reserved_is_case_insensitive(self) -> None:
        """RFC 9110 §5.1: field names are case-insensitive."""
        self.assertTrue(is_reserved("ACCEPT"))
        self.assertTrue(is_reserved("MCP-PARAM-Region"))
        self.assertFalse(is_reserved("X-Api-Key"))
        # Static upstream credentials are what `headers` is for.
        self.assertFalse(is_reserved("Authorization"))
