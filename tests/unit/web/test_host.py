"""The Host check against DNS rebinding (aigw/web/host.py)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from aigw.config.values import is_loopback_name
from aigw.web.host import HostCheck, host_of


class HostCheckTests(SynchronousTestCase):
    def test_loopback_public_url_serves_loopback_names_only(self) -> None:
        """MCP basic/transports "Security Warning": a local gateway serves loopback names."""
        check = HostCheck("http://127.0.0.1:1975")
        for host in (b"127.0.0.1:1975", b"localhost", b"app.localhost:80", b"[::1]:1975"):
            self.assertTrue(check.allows([host]), host)
        for host in (b"evil.example:1975", b"127.0.0.1.nip.io", b"[2001:db8::1]:1975", b""):
            self.assertFalse(check.allows([host]), host)
        self.assertFalse(check.allows([b"localhost", b"evil.example"]))
        self.assertTrue(check.allows(None))

    def test_other_public_urls_leave_the_host_to_the_proxy(self) -> None:
        """Behind a reverse proxy (public_url not a loopback URL) nothing is checked here."""
        self.assertTrue(HostCheck("https://gw.example").allows([b"evil.example"]))

    def test_host_values(self) -> None:
        """RFC 9110 §7.2: uri-host [ ":" port ], an IPv6 literal in brackets."""
        self.assertEqual(host_of(b"[::1]:1975"), "[::1]")
        self.assertEqual(host_of(b"a.example:80"), "a.example")
        self.assertEqual(host_of(b"a.example"), "a.example")
        self.assertTrue(is_loopback_name("LOCALHOST."))
        self.assertTrue(is_loopback_name("127.8.9.10"))
        self.assertFalse(is_loopback_name("localhost.evil.example"))
