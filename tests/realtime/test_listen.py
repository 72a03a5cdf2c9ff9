"""The bounded listener: a slow subscriber is told so, and its buffer is freed."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from realtime.listen import IDLE, Lagging, Listener, listen


def test_a_listener_delivers_in_order_within_its_backlog() -> None:
    async def scenario() -> list[int]:
        listener = Listener(backlog=5)
        for n in range(5):
            listener.deliver({"n": n})
        return [(await listener.__anext__())["n"] for _ in range(5)]

    assert asyncio.run(scenario()) == [0, 1, 2, 3, 4]


def test_passing_the_backlog_frees_the_buffer_and_raises_lagging() -> None:
    async def scenario() -> tuple[int, bool]:
        listener = Listener(backlog=3)
        for n in range(10):
            listener.deliver({"n": n})
        size = listener.queue.qsize()
        with pytest.raises(Lagging):
            await listener.__anext__()
        return size, listener.lagging

    size, lagging = asyncio.run(scenario())
    assert size == 1  # only the overflow marker is left
    assert lagging


class FakeLayer:
    def __init__(self) -> None:
        self.groups: Counter[str] = Counter()

    async def group_add(self, group: str, channel: str) -> None:
        self.groups[group] += 1

    async def group_discard(self, group: str, channel: str) -> None:
        del self.groups[group]


class FakeConsumer:
    def __init__(self) -> None:
        self.bounded_listeners: dict[str, set[Any]] = {}
        self.channel_layer = FakeLayer()
        self.channel_name = "c1"
        self._group_lock = asyncio.Lock()
        self._group_refs: Counter[str] = Counter()


def test_ending_one_listener_keeps_a_siblings_group() -> None:
    async def scenario() -> tuple[bool, bool]:
        consumer = FakeConsumer()
        async with listen(consumer, "t", ["g"], 10):
            async with listen(consumer, "t", ["g"], 10):
                pass
            still_joined = "g" in consumer.channel_layer.groups
        return still_joined, "g" in consumer.channel_layer.groups

    assert asyncio.run(scenario()) == (True, False)


def test_draining_a_listener_that_passed_its_backlog_raises_lagging() -> None:
    """jobStats drops what is buffered (it reads the current counts): the overflow must still
    reach it, or the subscription would go silent for good."""

    async def scenario() -> None:
        listener = Listener(backlog=3)
        listener.deliver({"n": 0})
        listener.drain()
        for n in range(10):
            listener.deliver({"n": n})
        with pytest.raises(Lagging):
            listener.drain()

    asyncio.run(scenario())


def test_an_idle_listener_says_so_and_a_busy_one_does_not() -> None:
    async def scenario() -> tuple[list[Any], list[Any]]:
        idle = Listener(backlog=5, idle_after=0.05)
        busy = Listener(backlog=100, idle_after=0.05)
        heard: list[Any] = []
        for _ in range(10):  # busy hears something every 0.02 s
            busy.deliver({"n": len(heard)})
            heard.append(await busy.__anext__())
            await asyncio.sleep(0.02)
        first = await asyncio.wait_for(idle.__anext__(), timeout=1)
        idle.stop()
        busy.stop()
        return [first], [m for m in heard if m is IDLE]

    said, busy_idle = asyncio.run(scenario())
    assert said == [IDLE]
    assert busy_idle == []
