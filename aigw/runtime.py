"""Process-wide settings of the running daemon (not of a GatewayService in a test).

CPython's cyclic garbage collector scans its youngest generation every 700 net
allocations and the whole heap from time to time.  In a proxy almost every
object dies young through reference counting, and the heap is mostly what
startup built (modules, config, routes): measured under the benchmark's load,
collections took about a fifth of the CPU time and full collections paused the
process for about 40 ms each (docs/performance.md).  So, once started:

* ``gc.freeze()`` moves everything built so far into a generation that is
  never scanned (it lives as long as the process anyway);
* the youngest generation is collected every ``YOUNG_THRESHOLD`` allocations,
  so most short-lived objects are already freed when a collection runs.

Cyclic garbage is still collected; it only waits a little longer.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 5000


def tune_garbage_collector() -> None:
    """Freeze what startup built and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
