"""Depot's channel layers: one reader per process on Redis, and the embedded mode's in memory.

ProcessReaderRedisChannelLayer (services mode) is channels-redis's layer with another way of
receiving; see its docstring.

ThreadSafeInMemoryChannelLayer (embedded mode): Channels' InMemoryChannelLayer keeps asyncio
queues that belong to the server's event loop. In embedded mode the Celery worker runs in a
thread of the same process, and its publishes run in another loop (async_to_sync makes one),
where putting into those queues would not wake the server's waiting consumers. This subclass
notes the server loop when a consumer first receives, and runs sends from any other loop on it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)


class _ReaderFailed:
    """Put in a waiting receiver's buffer when the process's reader stopped on an error."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class ProcessReaderRedisChannelLayer(RedisChannelLayer):
    """channels-redis, with one long-lived reader per process for the process's channels.

    Every consumer of a web process receives on a channel of the process ("specific.<process>!
    <local>"), and channels-redis keeps all of them in one sorted set in Redis. Its receive()
    makes whichever consumer takes a lock the reader: that consumer blocks in BZPOPMIN for all,
    and hands the others their messages. When that consumer goes (its socket closed), its
    receive is cancelled in the middle of the blocking command, so the Redis connection is
    dropped and a new one made (with redis-py's defaults, CLIENT SETINFO twice, which Redis
    before 7.2 refuses, and a read of its package metadata: 0.5 ms; Depot's clients now skip
    them, settings.REDIS_CLIENT_OPTIONS). A server whose sockets closed
    together made nearly one new connection per closed socket (19 of 20 in a probe), each
    leaving its exceptions and frames in cycles for the collector. And each receive wrapped
    the lock and the consumer's buffer in two tasks and an asyncio.wait, per message.

    Here a task of the layer is the only reader: it pops the process's messages and puts each
    into the buffers of the channels it names; a consumer's receive only waits on its buffer,
    so cancelling it touches no connection. The reader is not cancelled by consumers, so the
    backup queue channels-redis keeps against a cancelled pop (a ZADD before each message is
    handed over, a ZPOPMIN after, a script before each pop) is not needed: the message goes
    from BZPOPMIN to the buffers. What is lost when the process stops was for its own sockets,
    which close with it; their clients resume from their cursor.

    A channel's buffer goes when its receive is cancelled, or when it has held messages nobody
    received for longer than the layer's expiry (channels-redis's own limit on a message's wait
    in Redis): a consumer that is stopping no longer receives, and a group message still on its
    way to it (sent before it left its groups) would otherwise keep a buffer for nobody, one per
    such close, for the life of the process.

    If the reader fails (Redis is gone), every waiting receive raises its error, as the
    consumer holding channels-redis's lock did: their sockets close, and the clients reconnect
    and resume. The next receive starts a new reader. Channels not of the process ("!"-less)
    are received as channels-redis does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reader: asyncio.Task[None] | None = None
        self._reader_index = 0  # of the host the reader reads from
        self._waiting: set[str] = set()  # channels whose receive waits on its buffer
        # Channels with buffered messages and no receive waiting: since when (monotonic).
        self._unclaimed: dict[str, float] = {}
        self._next_sweep = 0.0

    async def receive(self, channel: str) -> dict[str, Any]:
        if "!" not in channel:
            return await super().receive(channel)
        assert self.require_valid_channel_name(channel)
        self._ensure_reader(channel)
        buffer = self.receive_buffer[channel]
        self._waiting.add(channel)
        self._unclaimed.pop(channel, None)
        try:
            message = await buffer.get()
        except asyncio.CancelledError:
            # The consumer is gone: so is what was buffered for it.
            self.receive_buffer.pop(channel, None)
            raise
        finally:
            self._waiting.discard(channel)
        if buffer.empty():
            self.receive_buffer.pop(channel, None)
        else:
            self._unclaimed[channel] = time.monotonic()
        if isinstance(message, _ReaderFailed):
            raise message.error
        return message

    def _ensure_reader(self, channel: str) -> None:
        loop = asyncio.get_running_loop()
        reader = self._reader
        if reader is not None and not reader.done():
            if reader.get_loop() is loop:
                return
            if not reader.get_loop().is_closed():
                raise RuntimeError(
                    "Two event loops are trying to receive() on one channel layer at once!"
                )
        real_channel = self.non_local_name(channel)
        assert real_channel.endswith(self.client_prefix + "!"), "Wrong client prefix"
        self._reader = loop.create_task(self._read(real_channel), name="channel-layer-reader")

    async def _read(self, real_channel: str) -> None:
        index = self._reader_index = self.consistent_hash(real_channel)
        key = self.prefix + real_channel
        try:
            while True:
                connection = self.connection(index)
                popped = await connection.bzpopmin(key, timeout=self.brpop_timeout)
                if popped is not None:
                    self._hand_over(popped[1])
                self._sweep_when_due()
        except Exception as error:
            # Every receive now waiting gets the error; a later one starts a new reader. A
            # consumer not waiting now loses nothing: what it has not been sent is still in
            # Redis, for the next reader.
            if self._reader is asyncio.current_task():
                logger.warning("the channel layer's reader stopped: %r", error)
            else:  # stopped on purpose (_stop_reader), not failed
                logger.debug("the channel layer's reader stopped: %r", error)
            for channel in list(self._waiting):
                self.receive_buffer[channel].put_nowait(_ReaderFailed(error))

    def _hand_over(self, data: bytes) -> None:
        """Put a popped message into the buffer of every channel it names."""
        try:
            message = self.deserialize(data)
            channels = message.pop("__asgi_channel__")
        except Exception:
            # One unreadable message is dropped; it must not stop every socket's reader.
            logger.exception("dropped a channel-layer message that could not be read")
            return
        now = time.monotonic()
        for channel in channels if isinstance(channels, list) else [channels]:
            self.receive_buffer[channel].put_nowait(message)
            if channel not in self._waiting:
                self._unclaimed.setdefault(channel, now)

    def _sweep_when_due(self) -> None:
        """Drop the buffers whose messages waited longer than the expiry with nobody receiving."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.expiry / 4
        for channel, since in list(self._unclaimed.items()):
            if now - since > self.expiry and channel not in self._waiting:
                del self._unclaimed[channel]
                self.receive_buffer.pop(channel, None)

    async def close_pools(self) -> None:
        await self._stop_reader()
        await super().close_pools()

    async def flush(self) -> None:
        await self._stop_reader()
        await super().flush()

    async def _stop_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is None or reader.done():
            return
        home = reader.get_loop()
        if home is asyncio.get_running_loop():
            reader.cancel()
            # redis-py can swallow a cancel that lands while a blocking command is sent or read
            # (redis/redis-py#2028): the reader then waited out its BZPOPMIN, or for ever, and
            # so did flush() and close_pools(). Closing the connections it may be blocked on
            # ends that command (the reader stops on the error), however late it was sent.
            pool = self.connection(self._reader_index).connection_pool
            while not reader.done():
                await pool.disconnect()
                await asyncio.wait({reader}, timeout=0.05)
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        elif not home.is_closed():
            home.call_soon_threadsafe(reader.cancel)


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
