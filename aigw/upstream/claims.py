"""Claims of the verified token as upstream headers (``claims_to_headers``).

The header names were checked when the config was read (``config/headers.py``); the
values come from the token, so each is checked per request: a string, number or
boolean, printable ASCII with no CR, LF or NUL (RFC 9110 §5.5), so that no claim can
end a header line and start another.  A claim that cannot be sent fails the request
(fail closed: a backend that relies on ``X-Forwarded-User`` must never get a request
without it, nor with part of it); a claim the token does not have is simply not sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aigw.principal import Principal, claim_at
from aigw.upstream.api import UpstreamError

#: Printable ASCII and SP/HTAB inside, never at either end (RFC 9110 §5.5: no leading
#: or trailing whitespace; obs-text is left out, so no charset is guessed).
_SAFE_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?)?")
#: Enough for any subject or e-mail address; a longer claim is no header.
MAX_VALUE_LENGTH = 1024


#: The claim at a dotted path (shared with the access rules' ``claims``).
lookup = claim_at


class ClaimsHeaders:
    """The configured claims of the request's principal, as header fields."""

    def __init__(self, backend: str, mapping: Mapping[str, str]) -> None:
        self._backend = backend
        self._mapping = tuple((claim, header.encode("ascii")) for claim, header in mapping.items())

    def fields(self, principal: Principal | None) -> list[tuple[bytes, bytes]]:
        if principal is None:  # the gateway's own housekeeping: no user to speak for
            return []
        found = []
        for claim, header in self._mapping:
            value = lookup(principal.claims, claim)
            if value is None:
                continue
            found.append((header, self._encode(claim, header, value)))
        return found

    def _encode(self, claim: str, header: bytes, value: object) -> bytes:
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = str(value)
        elif isinstance(value, str):
            text = value
        else:
            raise self._refuse(claim, header, "is not a string, number or boolean")
        if len(text) > MAX_VALUE_LENGTH:
            raise self._refuse(claim, header, f"is longer than {MAX_VALUE_LENGTH} characters")
        if not _SAFE_VALUE.fullmatch(text):
            raise self._refuse(
                claim,
                header,
                "holds a control character (CR, LF, NUL...), non-ASCII or edge spaces",
            )
        return text.encode("ascii")

    def _refuse(self, claim: str, header: bytes, why: str) -> UpstreamError:
        # The value itself is not quoted: it is the user's, and may be hostile.
        detail = f"claim {claim!r} {why}: it cannot be sent as {header.decode()}"
        return UpstreamError(self._backend, "credentials", detail)
