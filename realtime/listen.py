"""Listening to channel-layer groups from a subscription, with a bounded backlog.

Like strawberry's `listen_to_channel` (and sharing its per-group reference counts, so ending one
subscription never removes the socket from a group a sibling still needs), but each listener's
queue is bounded: a client too slow to take its messages does not grow the server's memory.
When the bound is passed the queue is emptied and the listener raises `Lagging`, so the
subscription can tell the client where to resume.

A listener can also say when it heard nothing for a while (`idle_after`): it then yields `IDLE`.
The channel layer is at-most-once, and a subscription that notices a lost message only when the
next one arrives would wait for ever for a lost last one (a job's end, a workspace's last
event): on IDLE it reads the durable state instead. One timer per listener, re-armed each
interval; a busy listener never yields IDLE.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any


class Lagging(Exception):
    """The subscriber fell more than the backlog behind; its buffered messages were dropped."""


_OVERFLOW: dict[str, Any] = {"type": "depot.overflow"}
IDLE: dict[str, Any] = {"type": "depot.idle"}


class Listener:
    def __init__(
        self, backlog: int, idle_after: float | None = None, only: tuple[str, Any] | None = None
    ) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=backlog + 1)
        self.backlog = backlog
        # The socket hands every listener of a message type each message of that type, its
        # siblings' too (another workspace's events): only those with this key and value are
        # this listener's, and only they count against its backlog.
        self.only = only
        self.lagging = False
        self._heard = False
        self._timer: asyncio.TimerHandle | None = None
        if idle_after:
            self._arm(idle_after)

    def _arm(self, idle_after: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(idle_after, self._tick, idle_after)

    def _tick(self, idle_after: float) -> None:
        if not self._heard and not self.lagging and self.queue.empty():
            self.queue.put_nowait(IDLE)
        self._heard = False
        self._arm(idle_after)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def deliver(self, message: dict[str, Any]) -> None:
        only = self.only
        if only is not None and message.get(only[0]) != only[1]:
            return
        self._heard = True
        if self.lagging:
            return
        if self.queue.qsize() >= self.backlog:
            # Free the buffer at once; the subscriber catches up from the durable store.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.lagging = True
            self.queue.put_nowait(_OVERFLOW)
            return
        self.queue.put_nowait(message)

    def drain(self) -> None:
        """Drop what is buffered (the caller reads the current state instead); raises Lagging
        if the bound was passed, as the next read would have."""
        while not self.queue.empty():
            if self.queue.get_nowait() is _OVERFLOW:
                raise Lagging()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        message = await self.queue.get()
        if message is _OVERFLOW:
            raise Lagging()
        return message


@contextlib.asynccontextmanager
async def listen(
    consumer: Any,
    message_type: str | Sequence[str],
    groups: Sequence[str],
    backlog: int,
    idle_after: float | None = None,
    only: tuple[str, Any] | None = None,
) -> AsyncIterator[Listener]:
    """A listener of the groups' messages of `message_type` (or of several types, in one queue
    in the order they arrive)."""
    listener = Listener(backlog, idle_after, only)
    registry: dict[str, set[Listener]] = consumer.bounded_listeners
    message_types = [message_type] if isinstance(message_type, str) else list(message_type)
    for kind in message_types:
        registry.setdefault(kind, set()).add(listener)
    joined: list[str] = []
    try:
        for group in groups:
            async with consumer._group_lock:
                await consumer.channel_layer.group_add(group, consumer.channel_name)
                consumer._group_refs[group] += 1
            joined.append(group)
        yield listener
    finally:
        listener.stop()
        for kind in message_types:
            registry[kind].discard(listener)
        for group in joined:
            async with consumer._group_lock:
                consumer._group_refs[group] -= 1
                if consumer._group_refs[group] <= 0:
                    del consumer._group_refs[group]
                    with contextlib.suppress(Exception):
                        await consumer.channel_layer.group_discard(group, consumer.channel_name)
