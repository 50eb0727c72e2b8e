"""What "ready" means: named checks that /readyz reports one by one."""

from __future__ import annotations

from collections.abc import Callable

import attrs

#: A check returns None when its part is ready, or a short reason when it is not.
Check = Callable[[], str | None]


@attrs.define
class Readiness:
    """The checks that must all pass before the gateway is ready for traffic.

    Later parts (keys loaded, authorization server reachable, backends up)
    register their own checks; /readyz reports each by name.
    """

    _checks: dict[str, Check] = attrs.field(factory=dict)

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    def report(self) -> tuple[bool, dict[str, str]]:
        """(ready, {check name: "ok" or the reason it is not ready})."""
        details: dict[str, str] = {}
        ready = True
        for name, check in self._checks.items():
            reason = check()
            details[name] = "ok" if reason is None else reason
            ready = ready and reason is None
        return ready, details
