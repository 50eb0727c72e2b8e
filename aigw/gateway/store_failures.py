"""A shared store's failures: ``StoreUnavailable``, what a store in Redis raises when it
does not answer in time or fails, and how they are reported: each one counted, a line
logged at most once per ``STORE_LOG_INTERVAL``.

A Redis that is down fails every request that asks it (the limiter) or every attempt
to reach it (the ended sessions' subscription), many a second: one warning each would
flood the log while saying nothing new.  The count is what a metric reads
(``aigw_limiter_store_failures_total``, ``aigw_session_store_failures_total``); the
line says how many failures it stands for since the last one, and the latest error.
"""

from __future__ import annotations

import math
from typing import Any

from twisted.internet.defer import TimeoutError as NoReply
from twisted.logger import Logger
from twisted.python.failure import Failure

#: At most one log line this often about a shared store failing.
STORE_LOG_INTERVAL = 10.0


class StoreUnavailable(Exception):
    """A shared store (Redis) did not answer in time, or failed."""


def why(error: BaseException) -> str:
    """What went wrong, for the log: a timeout (``Deferred.addTimeout``'s, whose own
    text is its arguments' repr) as the bound it missed."""
    if isinstance(error, NoReply):
        bound = error.args[0] if error.args else None
        if isinstance(bound, int | float):
            return f"no reply within {bound:g} s"
        return "no reply in time"
    return str(error) or type(error).__name__


class StoreFailures:
    """The failures of one shared store.  ``line`` is the warning's format: it may name
    ``{count}`` (failures since the last line), ``{total}``, ``{error}`` and the fields
    ``context`` (fixed) and ``report`` (per failure) give."""

    def __init__(self, clock: Any, log: Logger, line: str, **context: object) -> None:
        self.clock = clock
        self.log = log
        self.line = line
        self.context = context
        #: Failures so far (read by the metrics; carried across a reload).
        self.count = 0
        self._logged = 0
        self._last_log = -math.inf

    def report(self, error: BaseException, **fields: object) -> None:
        """Counted always; logged at most once per ``STORE_LOG_INTERVAL``."""
        self.count += 1
        now = self.clock.seconds()
        if now - self._last_log < STORE_LOG_INTERVAL:
            return
        self.log.warn(
            self.line,
            count=self.count - self._logged,
            total=self.count,
            error=why(error),
            **self.context,
            **fields,
        )
        self._last_log = now
        self._logged = self.count

    def failed(self, failure: Failure, **fields: object) -> None:
        """``report`` as an errback, for work nobody waits on: the failure handled."""
        self.report(failure.value or Exception(failure.getErrorMessage()), **fields)
