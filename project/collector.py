"""CPython's cycle collector, tuned for a long-running server process."""

from __future__ import annotations

import gc

# The youngest generation is collected every GC_GEN0_THRESHOLD allocations (CPython: 700).
GC_GEN0_THRESHOLD = 14000


def tune_the_collector() -> None:
    """A server with many open sockets holds a large, long-lived heap (each socket's consumer,
    handler, subscription tasks...), and CPython's collector walks all of it: at 1,000
    subscribers it took half the server's CPU and its full collections stalled every fan-out
    for ~1 s (bench/realtime). Everything alive after start-up (modules, the schema, Django) is
    frozen out of its reach, and the youngest generation is collected 20 times less often;
    reference counting still frees almost everything at once, the collector only finds cycles.

    Call it once the application is loaded. The HTTP benchmark's baselines call it too, so
    that they are measured with the same process settings as Depot.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
