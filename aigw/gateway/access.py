"""The seam between routing and authorization: who may use which backend and tool.

The gateway asks one question for lists and calls alike and gets a ``Decision``
that names the rule that decided, for the audit trail; ``aigw.auth.policy``
answers it from the config's ``access`` rules.  The question names the MCP
method (``tools/list`` for each listed tool, ``tools/call`` for a call) and the
kind of item, so a rule can allow listing a tool and refuse calling it.
"""

from __future__ import annotations

from typing import Literal, Protocol

import attrs

from aigw.principal import Principal

#: What a request names: a tool, a prompt, or a resource (its upstream URI or template).
Kind = Literal["tool", "prompt", "resource"]


@attrs.frozen
class Decision:
    """Allowed or not, and by which rule (a config key path such as ``access.rules[2]``
    or ``access.default``)."""

    allowed: bool
    rule: str

    def __bool__(self) -> bool:
        return self.allowed


class AccessPolicy(Protocol):
    """Decides whether ``principal`` may use ``backend`` (and the item ``name`` of
    ``kind``, when one is named) with ``method`` (None: no method named)."""

    def decide(
        self,
        principal: Principal,
        backend: str,
        name: str | None = None,
        *,
        kind: Kind = "tool",
        method: str | None = None,
    ) -> Decision: ...
