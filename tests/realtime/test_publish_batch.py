"""realtime.publish.RedisBatchSend: a publish batch (a job event's three groups, or several
events) in two Redis round trips instead of four per group, against channels-redis's own
group_send on a real Redis: the same messages reach the same channels, in batch order, with the
layer's capacity, and the publisher uses it only for a one-host RedisChannelLayer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Any
from unittest import mock

import pytest
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
                await publish.RedisBatchSend(layer).send(batch)
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


def test_many_messages_to_one_channel_keep_their_order() -> None:
    async def test() -> None:
        layer = _layer(capacity=1000)
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        sender = publish.RedisBatchSend(layer)
        await sender.send([("g", _message(n)) for n in range(200)])
        await sender.send([("g", _message(n)) for n in range(200, 300)])
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
        await publish.RedisBatchSend(layer).send(
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
        await publish.RedisBatchSend(layer).send([("g", _message(1))])
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

    async def test() -> None:
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        publisher = publish.Publisher(layer=lambda: layer)
        with mock.patch.object(layer, "group_send") as group_send:
            await publisher._send_all(layer, [("g", _message(1)), ("g", _message(2))])
        group_send.assert_not_called()
        assert publisher.sent == 2
        assert [m["sequence"] for m in await _drain(layer, channel)] == [1, 2]
        await layer.flush()

    _run(test)


def test_a_failing_batch_is_counted_and_swallowed() -> None:
    layer = _layer()

    async def test() -> None:
        publisher = publish.Publisher(layer=lambda: layer)
        with mock.patch.object(
            publish.RedisBatchSend, "send", side_effect=ConnectionError("redis is down")
        ):
            await publisher._send_all(layer, [("g", _message(1))])
        assert (publisher.sent, publisher.failed) == (0, 1)
        await layer.flush()

    _run(test)
