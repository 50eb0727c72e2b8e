"""The URLs a ``user_oauth`` backend and its authorization server may send aigw to.

Discovery follows URLs the operator never wrote: the backend's ``resource_metadata``
(RFC 9728 §5.1), its ``authorization_servers`` (§2) and their endpoints (RFC 8414 §2),
where aigw then sends codes, client secrets and refresh tokens.  A hostile or
compromised backend could name anything, so each is checked before it is asked
(server-side request forgery; RFC 9728 §7).  The rules, from the URL alone (names are
not resolved: a name that resolves to an internal address passes; egress filtering is
the operator's):

* an absolute ``https://`` URL of visible ASCII, at most ``MAX_URL`` characters, with
  a host, no userinfo (``user@``) and no ``#fragment`` (RFC 8414 §2, RFC 6749 §3.1.2);
* never a link-local, unspecified, multicast or reserved address literal
  (``169.254.169.254``, the cloud metadata services, ``fe80::``, ``0.0.0.0``), nor an
  address spelt otherwise than as a dotted quad (``2130706433``, ``0x7f.1``);
* loopback (``localhost``, ``127.0.0.0/8``, ``::1``), and then plain ``http://`` too,
  only when the URL the names came from is on loopback itself (a test or a sidecar):
  a backend elsewhere cannot send aigw to its own host.
"""

from __future__ import annotations

import ipaddress
import urllib.parse

from aigw.config.values import is_loopback_name

#: Longer than any real endpoint; a URL past it is refused, not followed.
MAX_URL = 2048
#: The address blocks no learnt URL may name (RFC 6890: not reachable as a server).
_NEVER = ("is_link_local", "is_unspecified", "is_multicast", "is_reserved")


def learnt_url_problem(url: object, source: str) -> str | None:
    """Why ``url``, named by the peer at ``source``, may not be asked; None if it may."""
    if not isinstance(url, str):
        return "not a string"
    if len(url) > MAX_URL:
        return f"longer than {MAX_URL} characters"
    if not url.isascii() or not url.isprintable() or " " in url:
        return "spaces, control or non-ASCII characters"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "not a URL"
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        return "not an absolute https:// URL"
    if "@" in parts.netloc:
        return "userinfo (user@) in the URL"
    if parts.fragment or url.endswith("#"):
        return "a #fragment in the URL"
    address = _address(host)
    if address is None and _ends_in_a_number(host):
        # 2130706433, 0x7f.1, 169.254.43518: what inet_aton (getaddrinfo) reads as an
        # address, not spelt as one (WHATWG URL "ends in a number").
        return f"{host} is an address not written as a dotted quad"
    loopback = is_loopback_name(host) or (address is not None and address.is_loopback)
    if address is not None and not loopback and any(getattr(address, kind) for kind in _NEVER):
        return f"{host} is a link-local, unspecified, multicast or reserved address"
    if loopback and not is_loopback_name(urllib.parse.urlsplit(source).hostname or ""):
        return f"{host} is loopback, and {source} is not"
    if parts.scheme == "http" and not loopback:
        return "credentials are sent here, so it must be an https:// URL (http only on loopback)"
    return None


def same_origin(url: str, other: str) -> bool:
    """RFC 6454 §4: scheme, host and port alike."""
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(other)
    return (a.scheme, a.hostname, _port(a)) == (b.scheme, b.hostname, _port(b))


def _port(parts: urllib.parse.SplitResult) -> int | None:
    return parts.port or {"https": 443, "http": 80}.get(parts.scheme)


def _ends_in_a_number(host: str) -> bool:
    last = host.rstrip(".").rsplit(".", 1)[-1].lower()
    return last.isdigit() or (
        last.startswith("0x") and all(c in "0123456789abcdef" for c in last[2:])
    )


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address literal ``host`` is, an IPv4-mapped IPv6 one as its IPv4 address."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
