"""A completed URL elicitation, told to its session's GET stream in whichever process
holds it (``sessions.redis_url``).

MCP 2025-11-25 client/elicitation, "Completion Notifications for URL Mode Elicitation":
the server MAY send ``notifications/elicitation/complete`` once the out-of-band
interaction completes, and MUST send it only to the client that got the elicitation.
Behind a balancer without stickiness three processes may be involved: A answered the
-32042 and alone remembers which session got it (``elicitations.py``), B serves the
browser's callback, C holds the session's GET stream.  With Redis, two notes on the
channel ``aigw:elicitation`` (the subscription of ``ended_sessions.py``, one
connection per process) find it:

* B PUBLISHes ``{"n": id, "i": issuer, "s": subject}``: that user completed it;
* A, which recorded the elicitation for a session of that same user, PUBLISHes the
  note again with ``"d"``: the hex SHA-256 of that session's id (never the id, a
  credential);
* each process holding an open GET stream of that session for that same user claims
  the telling with ``SET aigw:elicitation:<id> 1 NX PX`` and, if it won, tells its
  streams: once across processes.

The channel is written only by aigw processes; still, a note is bounded
(``MAX_NOTE``), anything malformed is ignored and counted with the store's failures
(``aigw_session_store_failures_total``), and a stream is told only if its session's
user is the note's.

When B's PUBLISH fails or gets no reply within ``sessions.redis_timeout``, the failure
is counted and B sends the note over the peer hop instead (``web/elicitation_notices.py``),
which tells the session when A holds its GET stream, as without Redis.  Once still
holds: both ways go through A's entry for the elicitation, used once
(``ElicitationSessions.completed``), so whichever reaches A second (the hop after a
PUBLISH Redis took but whose reply was lost, or the note Redis delivers when it resumes
after the hop told) tells nobody.  When A's own PUBLISH fails nobody is told (the
notification is optional; the client retries by hand) and the failure is counted; the
token is stored either way.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from aigw.gateway.ended_sessions import EndedSessions, digest_of
from aigw.gateway.gateway import Gateway
from aigw.gateway.streams import SessionStream
from aigw.sealed.elicitation_notice import ElicitationNotice
from aigw.sealed.session_id import session_digest

CHANNEL = b"aigw:elicitation"
ONCE_PREFIX = b"aigw:elicitation:"
#: The longest note heard (an id, an issuer URL, a subject and a digest fit easily).
MAX_NOTE = 4096
#: Milliseconds the claim of a telling is kept: longer than any note takes to arrive.
ONCE_MS = 600_000


#: What ``aigw doctor`` publishes: no elicitation has this id, so nobody is told.
PROBE = ElicitationNotice("aigw-doctor-probe", "", "")


async def check(shared: EndedSessions) -> None:
    """What ``aigw doctor`` asks of the store besides ``EndedSessions.check`` (which
    SUBSCRIBEs to ``CHANNEL`` once it is ``listen``ed to): PUBLISH on the channel, and
    SET NX PX, for the probe (1 ms).  Raises as the commands fail."""
    await shared.command(b"PUBLISH", CHANNEL, note(PROBE))
    probe = ONCE_PREFIX + PROBE.elicitation_id.encode("ascii")
    await shared.command(b"SET", probe, b"1", b"NX", b"PX", 1)


def note(notice: ElicitationNotice, digest: bytes | None = None) -> bytes:
    """What is published: the completion, and (A's) the digest of its session's id."""
    fields: dict[str, str] = {
        "n": notice.elicitation_id,
        "i": notice.issuer,
        "s": notice.subject,
    }
    if digest is not None:
        fields["d"] = digest.hex()
    return json.dumps(fields, separators=(",", ":")).encode("utf-8")


def read_note(payload: bytes) -> tuple[ElicitationNotice, bytes | None] | None:
    """The completion a note names and its session's digest (None: not named yet);
    None for anything that is not a note."""
    if len(payload) > MAX_NOTE:
        return None
    try:
        fields: Any = json.loads(payload)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        return None
    if not isinstance(fields, dict) or set(fields) - {"n", "i", "s", "d"}:
        return None
    values = [fields.get(key) for key in "nis"]
    if not all(isinstance(value, str) for value in values) or not values[0]:
        return None
    notice = ElicitationNotice(*(str(value) for value in values))
    if "d" not in fields:
        return notice, None
    digest = fields["d"]
    found = digest_of(digest.encode("ascii", "replace")) if isinstance(digest, str) else None
    return None if found is None else (notice, found)


class ElicitationCompletions:
    """Publishes the completions of this process's browser flows; tells this process's
    streams of the ones heard."""

    log = Logger()

    def __init__(self, gateway: Gateway, shared: EndedSessions) -> None:
        """Follows ``CHANNEL`` on ``shared``'s subscription (before it starts)."""
        self._gateway = gateway
        self._shared = shared
        shared.listen(CHANNEL, self._heard)

    async def completed(self, notice: ElicitationNotice) -> bool:
        """The user of ``notice`` completed it in this process's browser flow: tell
        every process.  False when Redis failed or did not answer within
        ``sessions.redis_timeout`` (counted and logged as the store's failures): the
        caller then tells it another way."""
        try:
            await self._shared.command(b"PUBLISH", CHANNEL, note(notice))
        except Exception as error:  # any failure of the store, a timeout among them
            self._shared.failures.report(error, doing="telling a completed elicitation")
            return False
        return True

    def _publish(self, message: bytes) -> None:
        self._shared.publish(CHANNEL, message, "naming the session of a completed elicitation")

    def _failed(self, failure: Failure, doing: str) -> None:
        self._shared.failures.failed(failure, doing=doing)

    def _heard(self, payload: bytes) -> None:
        read = read_note(payload)
        if read is None:
            self._shared.ignored("elicitation note", payload)
            return
        notice, digest = read
        gateway = self._gateway
        if digest is None:
            # Asked here? For a session of this same user (``ElicitationSessions``).
            session_id = gateway.calls.elicitations.completed(notice)
            if session_id is not None:
                self._publish(note(notice, session_digest(session_id)))
            return
        streams = gateway.session_streams(digest, notice)
        if streams:
            telling = ensureDeferred(self._tell_once(notice, streams))
            telling.addErrback(self._failed, "claiming a completion notice")

    async def _tell_once(self, notice: ElicitationNotice, streams: list[SessionStream]) -> None:
        """Tell ``streams`` if no other process claimed this elicitation first."""
        key = ONCE_PREFIX + notice.elicitation_id.encode("utf-8")
        claimed = await self._shared.command(b"SET", key, b"1", b"NX", b"PX", ONCE_MS)
        if claimed is None:
            return
        told = self._gateway.tell_completion(notice, streams)
        self.log.info(
            "elicitation {id} completed: {told} stream(s) of its session told here",
            id=notice.elicitation_id,
            told=told,
        )
