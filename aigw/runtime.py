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

Before freezing, the source attrs generated for the ``__init__``, ``__eq__`` and
``__repr__`` of every attrs class (kept in ``linecache`` so that a traceback through
them can show their lines: about 130 classes, 0.2 MiB of a started gateway) is
forgotten: such a traceback then names the generated method and its line, without the
text.
"""

from __future__ import annotations

import gc
import linecache

YOUNG_THRESHOLD = 5000
#: How attrs names the source it generates (``attr._make._generate_unique_filename``).
ATTRS_SOURCE = "<attrs generated"


def tune_garbage_collector() -> None:
    """Freeze what startup built and collect the young generation less often."""
    forget_generated_source()
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def forget_generated_source() -> None:
    """Drop attrs' generated source from ``linecache`` (see the module's docstring)."""
    for name in [name for name in linecache.cache if name.startswith(ATTRS_SOURCE)]:
        del linecache.cache[name]
