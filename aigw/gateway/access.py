"""The seam between routing and authorization: who may use which backend and tool.

The gateway asks one question for lists and calls alike and gets a ``Decision``
that names the rule that decided, for the audit trail; ``aigw.auth.policy``
answers it from the config's ``access`` rules.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from aigw.principal import Principal


@attrs.frozen
class Decision:
    """Allowed or not, and by which rule (a config key path such as ``access.rules[2]``
    or ``access.default``)."""

    allowed: bool
    rule: str

    def __bool__(self) -> bool:
        return self.allowed


class AccessPolicy(Protocol):
    """Decides whether ``principal`` may use ``backend`` (and ``tool``, when one is named)."""

    def decide(self, principal: Principal, backend: str, tool: str | None = None) -> Decision: ...
