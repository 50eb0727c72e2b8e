"""Who a verified access token speaks for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs


@attrs.frozen
class Principal:
    """The facts of one verified access token that the gateway decides on.

    ``claims`` holds every claim (JWT payload or introspection response) so that
    access rules can match on any of them; ``expires_at`` (the ``exp`` claim, in
    epoch seconds) bounds how long a verification result may be cached.
    """

    issuer: str
    subject: str
    client_id: str | None
    scopes: frozenset[str]
    claims: Mapping[str, object]
    token_id: str | None
    expires_at: float | None

    def has_scopes(self, needed: Iterable[str]) -> bool:
        """True when every scope of ``needed`` is held."""
        return frozenset(needed) <= self.scopes


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
