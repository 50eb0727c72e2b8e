"""DNS rebinding: the ``Host`` values a gateway on the loopback interface serves.

MCP basic/transports "Security Warning": a server running locally is exposed to
DNS rebinding.  A page of ``attacker.example``, whose name the attacker then
makes resolve to 127.0.0.1, talks to the gateway as a same-origin page: its
requests carry the attacker's name in ``Host`` (RFC 9110 §7.2) and, for a GET,
no ``Origin`` at all, so the Origin check alone does not see them.

When ``public_url`` names a loopback host, the gateway serves requests whose
``Host`` is a loopback name (``localhost``, ``*.localhost``, 127.0.0.0/8,
``[::1]``), on any port, and answers any other name ``421 Misdirected Request``
(RFC 9110 §15.5.20: this server is not willing to answer for that target, see
also §7.4).  A request without ``Host`` (HTTP/1.0, never a browser's) is served.
Behind a reverse proxy ``public_url`` is not a loopback URL and nothing is
checked here: the proxy decides which names reach the gateway.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Sequence

from aigw.config.values import is_loopback_name

#: ``Host`` values remembered with their verdict: a client sends the same one on every
#: request, and parsing an address costs more than the rest of the check.  Bounded, as
#: the values come from outside.
_REMEMBERED_HOSTS = 256


def host_of(value: bytes) -> str:
    """The host part of a ``Host`` value (``uri-host [ ":" port ]``, RFC 9110 §7.2)."""
    text = value.decode("latin-1").strip()
    if text.startswith("["):
        return text[: text.find("]") + 1] if "]" in text else text
    return text.rpartition(":")[0] if ":" in text else text


class HostCheck:
    """Whether a request's ``Host`` may be served, from ``public_url``."""

    def __init__(self, public_url: str) -> None:
        public_host = urllib.parse.urlsplit(public_url).hostname or ""
        self.enabled = is_loopback_name(public_host)

    def allows(self, values: Sequence[bytes] | None) -> bool:
        if not self.enabled:
            return True
        return all(map(_allowed, values or ()))  # no generator: 2 calls fewer


@functools.lru_cache(maxsize=_REMEMBERED_HOSTS)
def _allowed(value: bytes) -> bool:
    """Whether one ``Host`` value names a loopback host."""
    return is_loopback_name(host_of(value))
