"""aigw's own ``requestState``: where a parked call waits, for whom, until when.

When a session-based backend asks a 2026-07-28 client something mid-call, aigw
answers the client ``input_required`` and parks the upstream call
(``gateway/parking.py``).  The ``requestState`` it hands out names the parked
call and the process holding it, and is sealed as 2026-07-28
basic/patterns/mrtr "Server Requirements" 4-5 ask: integrity protected (AEAD,
purpose ``request-state``), bound to the authenticated user (associated data),
with a short expiry and a digest of the originating request (method and
params), each checked on the retry.  Anything that does not open is
``InvalidState``, answered -32602 Invalid params.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import attrs

from aigw.sealed.sealer import Sealer, SealError

#: Params of a retry that are not part of the request it retries (mrtr "Basic Workflow").
RETRY_PARAMS = ("inputResponses", "requestState", "_meta")


class InvalidState(Exception):
    """Not a ``requestState`` aigw sealed for this user and request, or expired."""


@attrs.frozen
class ParkState:
    """What a ``requestState`` of aigw says."""

    #: The process holding the parked call, and where its peers reach it (or None).
    process: str
    peer_url: str | None
    #: The parked call, in that process.
    key: str
    #: When the state lapses (seconds, the sealing process's clock).
    expires: float
    #: ``request_digest`` of the request it belongs to.
    digest: str


def request_digest(method: str, params: dict[str, Any]) -> str:
    """The originating request's method and salient params (``_meta`` and the retry's
    own fields left out), hashed: a state answers only a retry of that request."""
    salient = {k: v for k, v in params.items() if k not in RETRY_PARAMS}
    text = json.dumps([method, salient], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _user(issuer: str, subject: str) -> bytes:
    return json.dumps(["request-state", issuer, subject]).encode("ascii")


class RequestStateCodec:
    """Seal and open aigw's ``requestState`` values."""

    __slots__ = ("_sealer",)

    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer.for_purpose("request-state")

    def seal(self, state: ParkState, issuer: str, subject: str) -> str:
        payload = {
            "p": state.process,
            "u": state.peer_url,
            "k": state.key,
            "e": state.expires,
            "d": state.digest,
        }
        return self._sealer.seal(payload, _user(issuer, subject))

    def open(self, token: object, issuer: str, subject: str, digest: str, now: float) -> ParkState:
        """The state in ``token`` for this user, request and time; InvalidState otherwise."""
        try:
            payload = self._sealer.open(token, _user(issuer, subject))
        except SealError:
            raise InvalidState("requestState was not issued by aigw for this user") from None
        process, peer, key = payload.get("p"), payload.get("u"), payload.get("k")
        expires, sealed_digest = payload.get("e"), payload.get("d")
        if (
            not isinstance(process, str)
            or not (peer is None or isinstance(peer, str))
            or not isinstance(key, str)
            or not isinstance(expires, int | float)
            or isinstance(expires, bool)
            or not math.isfinite(expires)
            or not isinstance(sealed_digest, str)
        ):
            raise InvalidState("malformed requestState")
        if sealed_digest != digest:
            raise InvalidState("requestState belongs to another request")
        if expires < now:
            raise InvalidState("requestState has expired")
        return ParkState(process, peer, key, float(expires), sealed_digest)
