"""Who a verified access token speaks for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

#: One user: ``(issuer, subject)``.  A subject is unique only within its issuer (RFC 7519
#: §4.1.2; OpenID Connect Core 1.0 §2 ``sub``), so both name the user, whichever client
#: or token asked; what aigw keeps per user (upstream sessions, processes, streams,
#: exchanged tokens) is keyed by this.
UserKey = tuple[str, str]


class BearerToken:
    """The user's access token, held for the one thing that needs it: RFC 8693 token
    exchange, where it is the ``subject_token`` sent to the token endpoint.

    Not a ``str``, so it cannot end up in a header, a log line or a JSON document by
    accident: ``repr`` and ``str`` hide it, ``json`` refuses it, ``attrs.asdict``
    keeps it opaque; ``reveal()`` is the one way to the value, easy to find.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "BearerToken(<redacted>)"

    __str__ = __repr__


@attrs.frozen
class Principal:
    """The facts of one verified access token that the gateway decides on.

    ``claims`` holds every claim (JWT payload or introspection response) so that
    access rules can match on any of them; ``expires_at`` (the ``exp`` claim, in
    epoch seconds) bounds how long a verification result may be cached.

    ``token`` is the verified access token itself, set by the authenticator per
    request (never by the verifiers, whose caches hold no tokens), for RFC 8693
    token exchange only.  It is left out of ``repr`` and of equality and hashing (two
    principals of the same facts are the same user, whichever token proved it), and
    it is a ``BearerToken``, which never shows its value.  The upstream client sends
    only what its credentials give (``upstream/credentials.py``), never this.
    """

    issuer: str
    subject: str
    client_id: str | None
    scopes: frozenset[str]
    claims: Mapping[str, object]
    token_id: str | None
    expires_at: float | None
    token: BearerToken | None = attrs.field(default=None, repr=False, eq=False)

    def holding(self, token: BearerToken) -> Principal:
        """The same facts holding the token that proved them.  Built field by field, not
        with ``attrs.evolve``, whose field introspection costs three times as much, and
        this runs for every request."""
        return Principal(
            self.issuer,
            self.subject,
            self.client_id,
            self.scopes,
            self.claims,
            self.token_id,
            self.expires_at,
            token,
        )

    @property
    def user(self) -> UserKey:
        """The user these facts are about (``UserKey``)."""
        return (self.issuer, self.subject)

    def has_scopes(self, needed: Iterable[str]) -> bool:
        """True when every scope of ``needed`` is held."""
        return frozenset(needed) <= self.scopes


def claim_at(claims: Mapping[str, object], path: str) -> object:
    """The claim at ``path``, dots going into nested objects; None if absent.

    A claim whose own name holds the dot (``https://example.com/org``) is found first.
    Access rules and ``claims_to_headers`` both name claims this way.
    """
    if path in claims:
        return claims[path]
    value: object = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


#: The principal of every request under ``auth: none`` (development only).
ANONYMOUS = Principal(
    issuer="",
    subject="anonymous",
    client_id=None,
    scopes=frozenset(),
    claims={},
    token_id=None,
    expires_at=None,
)
