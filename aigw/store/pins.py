"""How a tool pin changes (``backends[].pin_tools``): trust on first use, then every
different definition waits for an operator.

Pure functions over ``ToolPin`` values, so that every store applies the same rules
inside its own transaction (``Store.record_pin``, ``Store.accept_pin``).
"""

from __future__ import annotations

import attrs

from aigw.store.api import ToolPin


def observed(
    pin: ToolPin | None,
    backend: str,
    kind: str,
    name: str,
    digest: str,
    definition: str,
    now: float,
) -> ToolPin:
    """The pin after a backend listed ``definition`` (of ``digest``) at ``now``.

    First sight pins it.  The pinned digest again clears a pending change (the backend
    went back to what was accepted).  A different digest becomes the pending one, with
    the time it was first seen; the same pending digest again changes nothing.
    """
    if pin is None:
        return ToolPin(backend, kind, name, digest, now, definition=definition)
    if digest == pin.digest:
        return attrs.evolve(pin, pending_digest=None, pending_since=None, pending_definition=None)
    if digest == pin.pending_digest:
        return pin
    return attrs.evolve(
        pin, pending_digest=digest, pending_since=now, pending_definition=definition
    )


def accepted(pin: ToolPin) -> ToolPin | None:
    """The pin with its pending digest accepted; None when nothing is pending."""
    if pin.pending_digest is None:
        return None
    return attrs.evolve(
        pin,
        digest=pin.pending_digest,
        definition=pin.pending_definition,
        pending_digest=None,
        pending_since=None,
        pending_definition=None,
    )
