"""project.collector.SocketHeap: open sockets' objects are frozen out of the collector's full
passes as they come, and what closed sockets leave is collected once there is enough of it
(in the server, once sockets have stopped closing)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable, Iterator

import pytest
from asgiref.sync import sync_to_async

from project import collector
from tests.realtime.sockets import Socket, close_db


class Cycle:
    """What a socket holds: objects that refer to each other (freed only by the collector)."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def heap() -> Iterator[collector.SocketHeap]:
    gc.collect()
    threshold = gc.get_threshold()
    heap = collector.SocketHeap()
    heap.enabled = True
    yield heap
    gc.unfreeze()  # give the test process's objects back to the collector
    gc.set_threshold(*threshold)


def _tracked(thing: object) -> bool:
    """Whether the collector's passes reach it (a frozen object is in no generation)."""
    return any(o is thing for o in gc.get_objects())


def test_every_so_many_sockets_opened_what_is_alive_is_frozen(heap: collector.SocketHeap) -> None:
    alive = Cycle()
    for _ in range(collector.FREEZE_EVERY_SOCKETS - 1):
        heap.opened()
    assert _tracked(alive)
    assert heap.freezes == 0
    heap.opened()
    assert heap.freezes == 1
    assert not _tracked(alive)  # full passes skip it now
    assert heap.open == collector.FREEZE_EVERY_SOCKETS


def test_what_closed_sockets_leave_is_collected_once_a_quarter_of_them_closed(
    heap: collector.SocketHeap,
) -> None:
    n = collector.CLEANUP_AFTER_CLOSED_SOCKETS * 4
    held = [Cycle() for _ in range(n)]
    for _ in range(n):
        heap.opened()
    gone = weakref.ref(held[0])
    del held  # garbage now, but frozen: no pass reaches it
    gc.collect()
    assert gone() is not None
    for _ in range(n // 4 - 1):
        heap.closed()  # a quarter of the n sockets, less one
    assert gc.collect() == 0
    assert gone() is not None
    assert heap.cleanups == 0
    heap.closed()
    assert heap.cleanups == 1
    assert gone() is None  # unfrozen, collected, frozen again
    assert heap.open == n - n // 4


def _closed_sockets_garbage(heap: collector.SocketHeap) -> tuple[int, weakref.ref[Cycle]]:
    """n sockets opened, frozen with what they hold, which is garbage now (a closed socket's)."""
    n = collector.CLEANUP_AFTER_CLOSED_SOCKETS * 4
    held = [Cycle() for _ in range(n)]
    for _ in range(n):
        heap.opened()
    return n, weakref.ref(held[0])


async def _until(condition: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while not condition():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)


def test_in_the_server_a_due_cleanup_waits_until_sockets_stop_closing_then_runs_once(
    heap: collector.SocketHeap, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector, "CLEANUP_QUIET_SECONDS", 0.05)
    n, gone = _closed_sockets_garbage(heap)

    async def run() -> None:
        for _ in range(n // 2):  # a burst: due after a quarter, still closing after that
            heap.closed()
        assert heap.cleanups == 0  # not in the middle of the burst
        assert gone() is not None
        await _until(lambda: heap.cleanups > 0)
        assert heap.cleanups == 1
        assert gone() is None

    asyncio.run(run())


def test_sockets_that_never_stop_closing_still_get_a_cleanup(
    heap: collector.SocketHeap, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector, "CLEANUP_QUIET_SECONDS", 3600.0)  # never quiet enough
    monkeypatch.setattr(collector, "CLEANUP_WAIT_AT_MOST_SECONDS", 0.2)
    n, gone = _closed_sockets_garbage(heap)

    async def run() -> None:
        for _ in range(n // 4):
            heap.closed()
        while heap.cleanups == 0:  # one more closes every 10 ms, until the bound runs it
            heap.closed()
            await asyncio.sleep(0.01)
        assert gone() is None

    asyncio.run(asyncio.wait_for(run(), 10))


def test_the_youngest_generation_grows_with_the_sockets_open(heap: collector.SocketHeap) -> None:
    floor = collector.GC_GEN0_THRESHOLD
    per_socket = collector.YOUNG_OBJECTS_PER_SOCKET
    below = floor // per_socket  # sockets that do not raise the threshold yet
    for _ in range(below):
        heap.opened()
    assert gc.get_threshold()[0] == floor
    for _ in range(1000 - below):
        heap.opened()
    # A fan-out to 1,000 subscribers holds ~15-40 young objects each until sent: no young
    # collection in the middle of it (bench/realtime).
    assert gc.get_threshold()[0] == per_socket * 1000 > floor
    older = gc.get_threshold()[1:]
    for _ in range(500):
        heap.closed()
    assert gc.get_threshold() == (per_socket * 500, *older)
    for _ in range(500):
        heap.closed()
    assert gc.get_threshold()[0] == floor


def test_outside_the_server_nothing_is_frozen() -> None:
    threshold = gc.get_threshold()[0]
    heap = collector.SocketHeap()  # tune_the_collector() never ran in this process
    alive = Cycle()
    for _ in range(collector.FREEZE_EVERY_SOCKETS * 2):
        heap.opened()
    for _ in range(collector.CLEANUP_AFTER_CLOSED_SOCKETS * 2):
        heap.closed()
    assert (heap.freezes, heap.cleanups) == (0, 0)
    assert _tracked(alive)
    assert gc.get_threshold()[0] == threshold  # nor the collector's thresholds changed


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_websocket_consumer_counts_a_socket_in_once_accepted_and_out_once_closed(
    token: str,
) -> None:
    async def run() -> None:
        before = collector.sockets.open
        socket = Socket()
        await socket.open(token)
        assert collector.sockets.open == before + 1
        await socket.close()
        assert collector.sockets.open == before
        await sync_to_async(close_db)()

    asyncio.run(run())
