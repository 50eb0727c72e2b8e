"""The seam between routing and authorization: who may use which backend and tool.

The gateway asks one question for lists and calls alike; ``aigw.auth.policy``
answers it from the config's ``access`` rules.
"""

from __future__ import annotations

from typing import Protocol

from aigw.principal import Principal


class AccessPolicy(Protocol):
    """Decides whether ``principal`` may use ``backend`` (and ``tool``, when one is named)."""

    def allows(self, principal: Principal, backend: str, tool: str | None = None) -> bool: ...
