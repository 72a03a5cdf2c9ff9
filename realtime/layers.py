"""The embedded-mode channel layer.

Channels' InMemoryChannelLayer keeps asyncio queues that belong to the server's event loop. In
embedded mode the Celery worker runs in a thread of the same process, and its publishes run in
another loop (async_to_sync makes one), where putting into those queues would not wake the
server's waiting consumers. This subclass notes the server loop when a consumer first receives,
and runs sends from any other loop on it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import InMemoryChannelLayer


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._home_loop: asyncio.AbstractEventLoop | None = None

    async def receive(self, channel: str) -> dict[str, Any]:
        self._home_loop = asyncio.get_running_loop()
        return await super().receive(channel)

    async def _on_home_loop(self, call: Callable[[], Awaitable[None]]) -> None:
        home = self._home_loop
        if home is None or home is asyncio.get_running_loop() or home.is_closed():
            await call()
            return
        future: concurrent.futures.Future[None] = asyncio.run_coroutine_threadsafe(
            call(),  # type: ignore[arg-type]
            home,
        )
        await asyncio.wrap_future(future)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self._on_home_loop(
            lambda: super(ThreadSafeInMemoryChannelLayer, self).send(channel, message)
        )

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self._on_home_loop(
            lambda: super(ThreadSafeInMemoryChannelLayer, self).group_send(group, message)
        )
