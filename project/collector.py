"""CPython's cycle collector, tuned for a long-running server process."""

from __future__ import annotations

import asyncio
import gc
import threading

# The youngest generation is collected every GC_GEN0_THRESHOLD allocations (CPython: 700).
GC_GEN0_THRESHOLD = 14000
# With many sockets open, the youngest generation's threshold is at least this many per socket
# (SocketHeap): a fan-out holds some 15-40 young objects per subscriber until it is sent.
YOUNG_OBJECTS_PER_SOCKET = 40
# Sockets opened since the last freeze that make the next one (SocketHeap).
FREEZE_EVERY_SOCKETS = 64
# Sockets closed since the last cleanup that make the next one, at least (SocketHeap): a cleanup
# also walks the heap frozen at start-up (~130,000 objects, ~50 ms), so it waits for this many.
CLEANUP_AFTER_CLOSED_SOCKETS = 256
# Once a cleanup is due, it waits until no socket has closed for this long, or at most this long
# (SocketHeap.closed).
CLEANUP_QUIET_SECONDS = 0.5
CLEANUP_WAIT_AT_MOST_SECONDS = 10.0


def tune_the_collector() -> None:
    """A server with many open sockets holds a large, long-lived heap (each socket's consumer,
    handler, subscription tasks...), and CPython's collector walks all of it: at 1,000
    subscribers it took half the server's CPU and its full collections stalled every fan-out
    for ~1 s (bench/realtime). Everything alive after start-up (modules, the schema, Django) is
    frozen out of its reach, and the youngest generation is collected 20 times less often;
    reference counting still frees almost everything at once, the collector only finds cycles.
    From then on, open sockets are frozen too, as they come, and the youngest generation's
    threshold grows with them (`sockets`).

    Call it once the application is loaded. The HTTP benchmark's baselines call it too, so
    that they are measured with the same process settings as Depot.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
    sockets.enabled = True


class SocketHeap:
    """Keeps open sockets' objects out of the collector's full passes, and collects what closed
    sockets leave once there is enough of it to be worth a pass.

    CPython makes a full pass (every object, ~0.3 s at 1,000 open sockets of ~400 objects each)
    whenever the long-lived objects grew by a quarter since the last one: after a burst of new
    sockets, in the middle of some fan-out (bench/realtime: the p99 at 1,000 subscribers went
    from 143 to 428 ms when it fell in the measured window). Growth is no garbage, though, and
    what a socket holds lives as long as the socket. So every FREEZE_EVERY_SOCKETS sockets
    opened, the objects the collector still tracks are collected (a full pass over those only,
    frozen ones are skipped: a few ms) and the survivors frozen.

    A closed socket leaves cycles behind (its consumer, handler and tasks refer to each other:
    ~130 objects), and frozen ones are never collected. So once the sockets closed since the
    last cleanup reach a quarter of the sockets there were (and at least
    CLEANUP_AFTER_CLOSED_SOCKETS), everything is unfrozen, collected and frozen again: CPython's
    own rule, counted in garbage, not growth. Until then they hold a few MB at most.

    Sockets often close together (clients gone with their network, a deploy, a Redis restart):
    1,000 closing at once made four cleanups in two seconds, each walking the sockets still open
    as well (350-670 ms each, bench/realtime trace). So a cleanup that is due waits until no
    socket has closed for CLEANUP_QUIET_SECONDS (at most CLEANUP_WAIT_AT_MOST_SECONDS), and then
    runs once, over a heap the closed sockets have left. Outside an event loop it runs at once.

    A fan-out to every socket holds young objects for each until it is sent (the message's
    futures, handles, frames...), and once they pass the youngest generation's threshold the
    collector walks them all, in the middle of the fan-out: at 1,000 subscribers and a
    threshold of 14,000, about two collections of ~12 ms per event, and one of the youngest but
    one (~33 ms) every few (bench/realtime). So the threshold grows with the sockets open:
    YOUNG_OBJECTS_PER_SOCKET each, never under GC_GEN0_THRESHOLD. Not more than that: a
    process that only serves HTTP makes cyclic garbage with every request, and one collection
    of 100,000 young objects there took over 100 ms (bench/http: p99 9 -> 139 ms).

    Only in the ASGI server (`tune_the_collector` turns it on); called from its event loop.
    """

    def __init__(self) -> None:
        self.enabled = False
        self.open = 0
        self._opened_since_freeze = 0
        self._closed_since_cleanup = 0
        self._lock = threading.Lock()
        self.freezes = 0
        self.cleanups = 0
        self._due_since: float | None = None  # the loop's time the pending cleanup fell due
        self._timer: asyncio.TimerHandle | None = None

    def opened(self) -> None:
        with self._lock:
            self.open += 1
            self._fit_the_young_generation()
            self._opened_since_freeze += 1
            if self.enabled and self._opened_since_freeze >= FREEZE_EVERY_SOCKETS:
                self._opened_since_freeze = 0
                gc.collect()
                gc.freeze()
                self.freezes += 1

    def closed(self) -> None:
        with self._lock:
            self.open = max(0, self.open - 1)
            self._fit_the_young_generation()
            self._closed_since_cleanup += 1
            # A quarter of the sockets there were: those open, and those closed since.
            there_were = self.open + self._closed_since_cleanup
            due = max(CLEANUP_AFTER_CLOSED_SOCKETS, there_were // 4)
            if self.enabled and self._closed_since_cleanup >= due:
                self._clean_up_soon()

    def _clean_up_soon(self) -> None:
        """Under the lock: (re)schedule the due cleanup on the running loop, or run it now."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._clean_up()
            return
        now = loop.time()
        if self._due_since is None:
            self._due_since = now
        if self._timer is not None:
            self._timer.cancel()
        at = min(now + CLEANUP_QUIET_SECONDS, self._due_since + CLEANUP_WAIT_AT_MOST_SECONDS)
        self._timer = loop.call_at(at, self._clean_up_when_quiet)

    def _clean_up_when_quiet(self) -> None:
        with self._lock:
            self._clean_up()

    def _clean_up(self) -> None:
        """Under the lock: unfreeze everything, collect, freeze again."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._due_since = None, None
        self._closed_since_cleanup = 0
        self._opened_since_freeze = 0
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.cleanups += 1

    def _fit_the_young_generation(self) -> None:
        if not self.enabled:
            return
        young, older, oldest = gc.get_threshold()
        wanted = max(GC_GEN0_THRESHOLD, YOUNG_OBJECTS_PER_SOCKET * self.open)
        if young != wanted:
            gc.set_threshold(wanted, older, oldest)


sockets = SocketHeap()
