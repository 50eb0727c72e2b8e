"""Unit tests run in memory (tests/unit/memory.py): a test that leaves a socket or
a timer on the global reactor, which nothing runs under pytest, fails here, so
real sockets and real time stay in tests/e2e, tests/process and tests/packaging.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _global_reactor_untouched() -> Iterator[None]:
    from twisted.internet import reactor

    yield
    calls = reactor.getDelayedCalls()
    for call in calls:
        call.cancel()
    left = calls + reactor.removeAll()  # sockets; not the reactor's own waker
    assert not left, f"left on the global reactor (use a MemoryNetwork): {left}"
