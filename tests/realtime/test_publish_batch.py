"""realtime.publish.RedisBatchSend: a publish batch (a job event's three groups, or several
events) in one Redis round trip instead of four per group, against channels-redis's own
group_send on a real Redis: the same messages reach the same channels, in batch order, with the
layer's capacity, and the publisher uses it only for a layer whose writes it reproduces. Also
the job's thread sending for itself (sent_from_this_thread) and the blocking client's retry."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Coroutine
from typing import Any
from unittest import mock

import pytest
import redis
from django.conf import settings

from realtime import publish

channels_redis = pytest.importorskip("channels_redis.core")

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL, reason="needs Redis (REDIS_URL), as the services mode does"
)


def _layer(**options: Any) -> Any:
    return channels_redis.RedisChannelLayer(
        hosts=[settings.REDIS_URL], prefix=f"depot-test-batch-{uuid.uuid4().hex[:8]}", **options
    )


def _run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


async def _drain(layer: Any, channel: str) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    while True:
        try:
            message = await asyncio.wait_for(layer.receive(channel), 0.3)
        except TimeoutError:
            return received
        received.append(message)


def _sequences(received: list[dict[str, Any]]) -> list[int]:
    """The events' sequences, a depot.events message's one by one."""
    events = [e for m in received for e in (m["events"] if m["type"] == "depot.events" else [m])]
    return [e["sequence"] for e in events]


def _message(n: int, **extra: Any) -> dict[str, Any]:
    return {"type": "depot.event", "sequence": n, "payload": {"n": n, "ü": "ä"}, **extra}


def test_it_delivers_what_group_send_delivers_in_batch_order() -> None:
    async def test() -> None:
        layer = _layer()
        # Two identical set-ups: one fed by channels-redis's group_send, one by a batch.
        results = []
        for sender in ("group_send", "batch"):
            first, second, both = [await layer.new_channel() for _ in range(3)]
            plain = await layer.new_channel(prefix="plain")
            g1, g2, empty = (f"{sender}-g{n}" for n in (1, 2, 3))
            for channel in (first, second, both, plain):
                await layer.group_add(g1, channel)
            await layer.group_add(g2, both)
            batch = [
                (g1, _message(1)),
                (g2, _message(2)),
                (empty, _message(3)),
                (g1, _message(4)),
                (g2, _message(5)),
            ]
            if sender == "group_send":
                for group, message in batch:
                    await layer.group_send(group, message)
            else:
                publish.RedisBatchSend(layer).send(batch)
            results.append([await _drain(layer, c) for c in (first, second, both, plain)])
        assert results[0] == results[1]
        first, second, both, plain = results[1]
        assert [m["sequence"] for m in first] == [1, 4]
        assert [m["sequence"] for m in second] == [1, 4]
        assert [m["sequence"] for m in both] == [1, 2, 4, 5]  # the batch's order
        assert [m["sequence"] for m in plain] == [1, 4]
        assert first[0] == _message(1)
        await layer.flush()

    _run(test)


def test_a_message_of_many_entries_arrives_whole() -> None:
    """msgpack writes a map of more than 15 entries with a longer header, which the script
    rewrites too when it adds the channel list."""

    async def test() -> None:
        layer = _layer()
        channels = [await layer.new_channel() for _ in range(2)] + [
            await layer.new_channel(prefix="plain")
        ]
        for channel in channels:
            await layer.group_add("g", channel)
        big = _message(7, **{f"field{n}": n for n in range(20)})
        publish.RedisBatchSend(layer).send([("g", big), ("g", _message(8))])
        for channel in channels:
            assert await _drain(layer, channel) == [big, _message(8)]
        await layer.flush()

    _run(test)


def test_many_messages_to_one_channel_keep_their_order() -> None:
    async def test() -> None:
        layer = _layer(capacity=1000)
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        sender = publish.RedisBatchSend(layer)
        sender.send([("g", _message(n)) for n in range(200)])
        sender.send([("g", _message(n)) for n in range(200, 300)])
        received = await _drain(layer, channel)
        assert [m["sequence"] for m in received] == list(range(300))
        await layer.flush()

    _run(test)


def test_a_full_channel_drops_as_group_send_does() -> None:
    async def test() -> None:
        layer = _layer(capacity=2)
        full, fine = await layer.new_channel(prefix="a"), await layer.new_channel(prefix="b")
        await layer.group_add("g", full)
        await layer.group_add("h", fine)
        publish.RedisBatchSend(layer).send(
            [("g", _message(n)) for n in range(4)] + [("h", _message(9))]
        )
        assert [m["sequence"] for m in await _drain(layer, full)] == [0, 1]
        assert [m["sequence"] for m in await _drain(layer, fine)] == [9]
        await layer.flush()

    _run(test)


def test_an_expired_group_member_gets_nothing() -> None:
    async def test() -> None:
        layer = _layer(group_expiry=1)
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        connection = layer.connection(0)
        # As if it joined long ago and never renewed its membership.
        await connection.zadd(layer._group_key("g"), {channel: 1})
        publish.RedisBatchSend(layer).send([("g", _message(1))])
        assert await _drain(layer, channel) == []
        assert await connection.zcard(layer._group_key("g")) == 0
        await layer.flush()

    _run(test)


def test_the_publisher_batches_for_a_redis_layer_only() -> None:
    layer = _layer()
    assert publish.RedisBatchSend.fits(layer)
    assert not publish.RedisBatchSend.fits(object())  # e.g. the in-memory layer
    two_hosts = channels_redis.RedisChannelLayer(hosts=[settings.REDIS_URL, settings.REDIS_URL])
    assert not publish.RedisBatchSend.fits(two_hosts)
    # What the script does not reproduce: per-channel capacities, encrypted messages.
    assert not publish.RedisBatchSend.fits(_layer(channel_capacity={"specific.*": 5}))
    encrypted = _layer()
    encrypted._serializer.crypter = object()  # as with symmetric_encryption_keys
    assert not publish.RedisBatchSend.fits(encrypted)

    async def test() -> None:
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        publisher = publish.Publisher(layer=lambda: layer)
        with mock.patch.object(layer, "group_send") as group_send:
            publisher._send(layer, [("g", _message(1)), ("g", _message(2))])
        group_send.assert_not_called()
        # The batch's two events of one group went as one message (publish.coalesced).
        assert publisher.sent == 1
        [received] = await _drain(layer, channel)
        assert received["type"] == "depot.events"
        assert [m["sequence"] for m in received["events"]] == [1, 2]
        await layer.flush()

    _run(test)


def test_a_failing_batch_is_counted_and_swallowed() -> None:
    layer = _layer()

    async def test() -> None:
        publisher = publish.Publisher(layer=lambda: layer)
        with mock.patch.object(
            publish.RedisBatchSend, "send", side_effect=ConnectionError("redis is down")
        ):
            publisher._send(layer, [("g", _message(1))])
        assert (publisher.sent, publisher.failed) == (0, 1)
        await layer.flush()

    _run(test)


def test_inside_sent_from_this_thread_a_submit_is_sent_before_it_returns_after_the_queue() -> None:
    layer = _layer()
    publisher = publish.Publisher(layer=lambda: layer)

    async def test() -> None:
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        hold, entered = threading.Lock(), threading.Event()
        with hold:
            real_send = publisher._send

            def held_send(*args: Any) -> None:  # the publisher thread is stuck in Redis
                entered.set()
                with hold:
                    real_send(*args)

            with mock.patch.object(publisher, "_send", held_send):
                publisher.submit([("g", _message(1))])  # queued for the thread
                assert await asyncio.to_thread(entered.wait, 5)  # the thread took it
                publisher.submit([("g", _message(2))])  # queued behind it
        # The thread sends 1; a job's thread then sends 3 itself, after 2 if that is still
        # queued (then in one message with it: publish.coalesced).
        with publish.sent_from_this_thread():
            publisher.submit([("g", _message(3))])
        received = await _drain(layer, channel)
        assert _sequences(received) == [1, 2, 3]
        assert publisher.sent == len(received)
        assert publisher.flush(1)
        await layer.flush()

    try:
        _run(test)
    finally:
        publisher.stop()


def test_after_a_failed_send_a_jobs_thread_queues_instead_of_waiting_for_redis() -> None:
    layer = _layer()
    publisher = publish.Publisher(layer=lambda: layer)

    async def test() -> None:
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        with publish.sent_from_this_thread():
            with mock.patch.object(
                publish.RedisBatchSend, "send", side_effect=redis.ConnectionError("down")
            ):
                publisher.submit([("g", _message(1))])  # tried here, failed
            assert (publisher.sent, publisher.failed) == (0, 1)
            assert publisher._thread is None  # nothing was queued so far
            publisher.submit([("g", _message(2))])  # queued: the thread sends it
            assert publisher._thread is not None
            assert publisher.flush(5)
            publisher.submit([("g", _message(3))])  # Redis answered again: sent here
        assert [m["sequence"] for m in await _drain(layer, channel)] == [2, 3]
        assert (publisher.sent, publisher.failed) == (2, 1)
        await layer.flush()

    try:
        _run(test)
    finally:
        publisher.stop()


def test_a_connection_redis_dropped_is_replaced_without_losing_the_send() -> None:
    layer = _layer()
    sender = publish.RedisBatchSend(layer)

    async def test() -> None:
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        sender.send([("g", _message(1))])
        # As after a Redis restart: the server closed the client's idle connection.
        other = redis.Redis.from_url(settings.REDIS_URL)
        assert other.client_kill_filter(_id=str(sender.client.client_id())) == 1
        other.close()
        sender.send([("g", _message(2))])
        assert [m["sequence"] for m in await _drain(layer, channel)] == [1, 2]
        await layer.flush()

    _run(test)
