"""The note one aigw process sends another: a user completed a URL elicitation it asked.

A user's authorization at a ``user_oauth`` backend may complete (the browser's
callback) on another process than the one that answered the session's -32042 and
remembers which session got it (``gateway/elicitations.py``).  The callback's process
tells that one over ``sessions.peer_url`` with this note, which carries no bearer
token (the browser holds none): it is its own credential.  It is sealed with the
deployment's key (AEAD, purpose ``elicitation-notice``), bound to the receiving
process (associated data: a note for one process opens in no other, nor after its
restart), names the user whose elicitation it is (the receiver tells only a session
of that user), and expires within seconds.  Anything that does not open is
``InvalidNotice``.
"""

from __future__ import annotations

import json
import math

import attrs

from aigw.sealed.sealer import Sealer, SealError

#: A note is sent at once and never retried: long enough for one hop on a loaded host.
NOTICE_TTL = 60.0


class InvalidNotice(Exception):
    """Not a note sealed by this deployment for this process, or expired."""


@attrs.frozen
class ElicitationNotice:
    """The user ``issuer``/``subject`` completed the URL elicitation ``elicitation_id``."""

    elicitation_id: str
    issuer: str
    subject: str


def _receiver(process: str) -> bytes:
    return json.dumps(["elicitation-notice", process]).encode("ascii")


class ElicitationNoticeCodec:
    """Seal notes for a peer process, and open the ones sealed for this one."""

    __slots__ = ("_sealer",)

    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer.for_purpose("elicitation-notice")

    def seal(self, notice: ElicitationNotice, process: str, now: float) -> str:
        """The note for the process named ``process``, valid ``NOTICE_TTL`` from ``now``."""
        payload = {
            "n": notice.elicitation_id,
            "i": notice.issuer,
            "s": notice.subject,
            "e": now + NOTICE_TTL,
        }
        return self._sealer.seal(payload, _receiver(process))

    def open(self, token: object, process: str, now: float) -> ElicitationNotice:
        """The note in ``token`` if it was sealed for ``process`` and is still valid."""
        try:
            payload = self._sealer.open(token, _receiver(process))
        except SealError:
            raise InvalidNotice("not a notice sealed for this aigw process") from None
        fields = [payload.get(key) for key in "nis"]
        expires = payload.get("e")
        if (
            not all(isinstance(value, str) for value in fields)
            or not isinstance(expires, int | float)
            or isinstance(expires, bool)
            or not math.isfinite(expires)
        ):
            raise InvalidNotice("malformed notice")
        if expires < now:
            raise InvalidNotice("the notice has expired")
        elicitation_id, issuer, subject = (str(value) for value in fields)
        return ElicitationNotice(elicitation_id, issuer, subject)
