"""realtime.layers.ProcessReaderRedisChannelLayer on a real Redis: one reader per process hands
each process channel its messages in order, a receive that is cancelled (its socket closed)
leaves the reader and its Redis connection alone, and when Redis goes away every waiting
receive fails (so the sockets close and their clients resume) until Redis is back."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings

from realtime.layers import ProcessReaderRedisChannelLayer
from tests.support.processes import ManagedProcess, free_port, wait_for_tcp

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL, reason="needs Redis (REDIS_URL), as the services mode does"
)


def _layer(url: str, client_name: str = "", **options: Any) -> ProcessReaderRedisChannelLayer:
    host: dict[str, Any] = {"address": url}
    if client_name:
        host["client_name"] = client_name
    return ProcessReaderRedisChannelLayer(
        hosts=[host], prefix=f"depot-test-reader-{uuid.uuid4().hex[:8]}", **options
    )


def _connection_ids(url: str, client_name: str) -> set[str]:
    """Redis's ids of the connections that carry this name (a new connection, a new id)."""
    clients = redis.Redis.from_url(url).client_list()
    return {c["id"] for c in clients if c.get("name") == client_name}


async def _next(layer: Any, channel: str) -> dict[str, Any]:
    return await asyncio.wait_for(layer.receive(channel), 5)


def test_each_process_channel_gets_its_messages_in_order() -> None:
    async def test() -> None:
        layer = _layer(settings.REDIS_URL)
        try:
            first, second = await layer.new_channel(), await layer.new_channel()
            await layer.group_add("everyone", first)
            await layer.group_add("everyone", second)
            for n in range(5):
                await layer.group_send("everyone", {"type": "tick", "n": n})
            await layer.send(second, {"type": "only", "n": 99})
            got_first = [(await _next(layer, first))["n"] for _ in range(5)]
            got_second = [(await _next(layer, second))["n"] for _ in range(6)]
            assert got_first == [0, 1, 2, 3, 4]
            assert got_second == [0, 1, 2, 3, 4, 99]
            # A channel without "!" is not the process's: received as channels-redis does.
            await layer.send("shared.work", {"type": "job"})
            assert (await _next(layer, "shared.work"))["type"] == "job"
        finally:
            await layer.flush()

    asyncio.run(test())


def test_a_cancelled_receive_keeps_the_reader_and_its_connection() -> None:
    name = f"depot-test-reader-{uuid.uuid4().hex[:8]}"

    async def test() -> None:
        layer = _layer(settings.REDIS_URL, client_name=name)
        try:
            staying, leaving = await layer.new_channel(), await layer.new_channel()
            await layer.send(staying, {"type": "hello"})
            assert (await _next(layer, staying))["type"] == "hello"
            # The layer's one connection now: the reader's, blocked in BZPOPMIN again.
            before = await asyncio.to_thread(_connection_ids, settings.REDIS_URL, name)
            assert len(before) == 1

            # Both wait, the reader blocked in Redis; one socket closes (its receive is
            # cancelled), as channels-redis's lock holder would have been mid-BZPOPMIN.
            waits = [asyncio.create_task(layer.receive(c)) for c in (leaving, staying)]
            await asyncio.sleep(0.2)
            waits[0].cancel()
            with pytest.raises(asyncio.CancelledError):
                await waits[0]

            await layer.send(staying, {"type": "still here"})
            assert (await asyncio.wait_for(waits[1], 5))["type"] == "still here"
            after = await asyncio.to_thread(_connection_ids, settings.REDIS_URL, name)
            # Sending took a second connection; the reader's was neither dropped nor remade.
            assert before <= after
            assert leaving not in layer.receive_buffer, "the closed socket's buffer is freed"
        finally:
            await layer.flush()

    asyncio.run(test())


def test_an_unreadable_message_is_dropped_and_the_reader_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def test() -> None:
        layer = _layer(settings.REDIS_URL)
        try:
            channel = await layer.new_channel()
            waiting = asyncio.create_task(layer.receive(channel))
            await asyncio.sleep(0.2)
            key = layer.prefix + layer.non_local_name(channel)
            await layer.connection(0).zadd(key, {b"not msgpack at all": 1.0})
            await layer.send(channel, {"type": "after"})
            assert (await asyncio.wait_for(waiting, 5))["type"] == "after"
        finally:
            await layer.flush()

    asyncio.run(test())
    assert "could not be read" in caplog.text


def test_messages_for_a_consumer_that_stopped_receiving_go_after_the_expiry() -> None:
    async def test() -> None:
        layer = _layer(settings.REDIS_URL, expiry=1)
        try:
            stopping, live = await layer.new_channel(), await layer.new_channel()
            await layer.group_add("workspace", stopping)
            await layer.group_add("workspace", live)
            live_waits = asyncio.create_task(layer.receive(live))
            # A consumer in its disconnect: it took one message and receives no more, and
            # another was already on its way before it left the group.
            await layer.group_send("workspace", {"type": "event", "n": 1})
            assert (await _next(layer, stopping))["n"] == 1
            await layer.group_send("workspace", {"type": "event", "n": 2})
            await layer.group_discard("workspace", stopping)
            assert (await asyncio.wait_for(live_waits, 5))["n"] == 1
            assert (await _next(layer, live))["n"] == 2
            assert stopping in layer.receive_buffer

            live_waits = asyncio.create_task(layer.receive(live))
            await asyncio.sleep(1.5)  # past the expiry, the live one still waiting
            await layer.group_send("workspace", {"type": "event", "n": 3})
            assert (await asyncio.wait_for(live_waits, 5))["n"] == 3
            assert stopping not in layer.receive_buffer, "its buffer went with the expiry"
        finally:
            await layer.flush()

    asyncio.run(test())


def test_a_new_event_loop_gets_a_new_reader() -> None:
    layer = _layer(settings.REDIS_URL)

    async def round_trip(n: int) -> int:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "n", "n": n})
        return int((await _next(layer, channel))["n"])

    # The first loop ends with its reader still running, as a server's loop does when it stops.
    assert asyncio.run(round_trip(1)) == 1
    assert asyncio.run(round_trip(2)) == 2
    asyncio.run(layer.flush())


def test_flush_in_the_readers_loop_stops_a_reader_that_ignores_its_cancel() -> None:
    """redis-py can swallow the cancel of a blocking command (redis/redis-py#2028): the reader
    then went on in BZPOPMIN, and flush() (and close_pools()) waited out its 5 s block, or for
    ever. Here its BZPOPMIN swallows the first cancel as redis-py does, and blocks again."""
    swallowed: list[int] = []

    async def test() -> None:
        layer = _layer(settings.REDIS_URL)
        client = layer.connection(0)
        blocking_pop = client.bzpopmin

        async def pop_that_swallows_a_cancel(*args: Any, **kwargs: Any) -> Any:
            try:
                return await blocking_pop(*args, **kwargs)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if swallowed or task is None:
                    raise
                swallowed.append(task.uncancel())
                return await blocking_pop(*args, **kwargs)

        client.bzpopmin = pop_that_swallows_a_cancel
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "hello"})
        assert (await _next(layer, channel))["type"] == "hello"
        await asyncio.sleep(0.1)  # the reader is back in BZPOPMIN
        started = time.monotonic()
        await asyncio.wait_for(layer.flush(), 3)
        assert time.monotonic() - started < 1
        assert layer._reader is None
        # The layer works on after a flush: a new reader.
        await layer.send(channel, {"type": "again"})
        assert (await _next(layer, channel))["type"] == "again"
        await layer.flush()

    asyncio.run(test())
    assert swallowed == [0]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_when_redis_goes_waiting_receives_fail_and_a_later_one_reads_again(
    tmp_path: Path,
) -> None:
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(tmp_path)]
    url = f"redis://127.0.0.1:{port}/0"

    async def test() -> None:
        server = ManagedProcess(argv, log_dir=tmp_path, name="redis").start()
        try:
            wait_for_tcp("127.0.0.1", port, 10, process=server)
            layer = _layer(url)
            channels = [await layer.new_channel() for _ in range(3)]
            waits = [asyncio.create_task(layer.receive(c)) for c in channels]
            await asyncio.sleep(0.2)
            server.stop()
            results = await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 10)
            assert all(isinstance(r, redis.exceptions.ConnectionError) for r in results), results
        finally:
            server.stop()
        restarted = ManagedProcess(argv, log_dir=tmp_path, name="redis").start()
        try:
            wait_for_tcp("127.0.0.1", port, 10, process=restarted)
            await layer.send(channels[0], {"type": "back"})
            assert (await _next(layer, channels[0]))["type"] == "back"
            await layer.flush()
        finally:
            restarted.stop()

    asyncio.run(test())
