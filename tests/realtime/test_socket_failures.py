"""A websocket that meets a failure or a malformed frame closes properly, and leaves nothing.

Before: a frame that is JSON but not a protocol message killed strawberry's handler and left a
socket that answered nothing; a failed channel layer (Redis gone) ended the consumer without its
cleanup, so the re-checks of sockets already gone kept them counted under their user's limit;
one failed periodic re-check ended the re-checks for good; a document that did not parse got a
bare `complete`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from channels.layers import get_channel_layer

from domain.accounts.actor import Actor
from domain.accounts.models import User
from domain.accounts.selectors import actor_still_valid
from realtime import consumer as consumer_module
from realtime import sockets
from realtime.consumer import DepotWSConsumer
from realtime.layers import _ReaderFailed
from tests.realtime.sockets import Socket, run

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


class _Consumers:
    """Every DepotWSConsumer made while patched."""

    def __init__(self) -> None:
        self.made: list[DepotWSConsumer] = []
        made, original = self.made, DepotWSConsumer.__init__

        def init(consumer: DepotWSConsumer, *args: Any, **kwargs: Any) -> None:
            original(consumer, *args, **kwargs)
            made.append(consumer)

        self.patch = mock.patch.object(DepotWSConsumer, "__init__", init)


async def _until(condition: Callable[[], bool], wait: float = 10) -> None:
    end = asyncio.get_running_loop().time() + wait
    while not condition():
        assert asyncio.get_running_loop().time() < end, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    "frame",
    [
        "[]",
        "null",
        '"hello"',
        "42",
        '{"type": 7}',
        '{"type": "subscribe", "id": "1", "payload": "not an object"}',
        '{"type": "subscribe", "id": "1", "payload": {"query": 5}}',
        '{"type": "subscribe", "id": "1", "payload": {"query": "{ viewer { id } }", '
        '"variables": [1]}}',
        '{"type": "subscribe", "id": ["x"], "payload": {"query": "{ viewer { id } }"}}',
        '{"type": "complete", "id": {"a": 1}}',
        '{"type": "ping", "payload": "x"}',
    ],
)
def test_a_frame_that_is_no_protocol_message_closes_the_socket_with_4400(
    token: str, frame: str
) -> None:
    async def scenario() -> int | None:
        socket = Socket()
        await socket.open(token)
        await socket.app.send_input({"type": "websocket.receive", "text": frame})
        return await socket.closed(wait=5)

    assert run(scenario) == 4400


@pytest.mark.parametrize(
    "document", ["subscription {", "subscription { events(", "{ " + "viewer " * 2100 + "}"]
)
def test_a_document_that_does_not_parse_closes_with_its_reason_not_a_bare_complete(
    token: str, document: str
) -> None:
    async def scenario() -> dict[str, Any]:
        socket = Socket()
        await socket.open(token)
        await socket.send({"id": "bad", "type": "subscribe", "payload": {"query": document}})
        return await socket.app.receive_output(5)

    closed = run(scenario)
    assert closed["type"] == "websocket.close", closed
    assert closed["code"] == 4400
    assert "Syntax Error" in closed["reason"]


def test_a_database_error_while_authenticating_closes_with_1011(token: str) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("database down")

    async def scenario() -> dict[str, Any]:
        socket = Socket()
        await socket.app.send_input({"type": "websocket.connect"})
        assert (await socket.app.receive_output(5))["type"] == "websocket.accept"
        await socket.send({"type": "connection_init", "payload": {"authToken": token}})
        return await socket.app.receive_output(5)

    with mock.patch.object(consumer_module, "actor_from_bearer", broken):
        closed = run(scenario)
    assert closed["type"] == "websocket.close", closed
    assert closed["code"] == 1011


def test_when_the_channel_layer_fails_its_sockets_close_and_leave_nothing_behind(
    token: str, owner: User, settings: Any
) -> None:
    """Redis going away fails every waiting receive of the process (realtime/layers.py). The
    sockets close with 1011, stop counting under their user's limit and stop re-checking, so
    the clients' reconnects are let in."""
    settings.DEPOT_WS_MAX_SOCKETS_PER_USER = 2
    settings.DEPOT_WS_RECHECK_SECONDS = 0.2
    consumers = _Consumers()

    async def scenario() -> tuple[list[int | None], list[int | None]]:
        first = [Socket() for _ in range(2)]
        for socket in first:
            await socket.open(token)
        layer = get_channel_layer()
        assert layer is not None
        for consumer in consumers.made:
            layer.receive_buffer[consumer.channel_name].put_nowait(
                _ReaderFailed(ConnectionError("Redis went away"))
            )
        codes = [await socket.closed(wait=5) for socket in first]
        for socket in first:
            await socket.app.wait(5)
        gone = consumers.made[:2]
        assert all(c.watcher is None and c.counted_user is None for c in gone)
        assert all(c.run_task is not None and c.run_task.done() for c in gone)
        # Several re-check intervals later, nothing has counted the closed sockets again.
        await asyncio.sleep(1.0)
        again = [Socket() for _ in range(2)]
        for socket in again:
            await socket.open(token)  # asserts the ack
        for socket in again:
            await socket.close()
        return codes, [c.counted_user for c in consumers.made]

    with consumers.patch:
        codes, counted = run(scenario)
    assert codes == [1011, 1011]
    assert counted == [None] * 4
    assert sockets.open_for(owner.pk, "probe")  # the user's set is empty again
    sockets.closed_for(owner.pk, "probe")


def test_a_failed_periodic_recheck_is_tried_again_next_interval(token: str, settings: Any) -> None:
    settings.DEPOT_WS_RECHECK_SECONDS = 0.1
    checks: list[str] = []

    def failing_once(*, actor: Actor, secret: str | None, session_key: str | None) -> Actor | None:
        checks.append("checked")
        if len(checks) == 1:
            raise ConnectionError("database down")
        return actor_still_valid(actor=actor, secret=secret, session_key=session_key)

    async def scenario() -> None:
        socket = Socket()
        await socket.open(token)
        await _until(lambda: len(checks) >= 3)
        assert await socket.app.receive_nothing(0.05), "the socket stays open"
        await socket.close()

    with mock.patch.object(consumer_module, "actor_still_valid", failing_once):
        run(scenario)


def test_a_socket_that_leaves_while_it_authenticates_leaves_nothing_behind(
    token: str, owner: User
) -> None:
    consumers = _Consumers()
    entered = asyncio.Event  # made in the scenario's loop
    open_socket = consumer_module._open_socket

    async def scenario() -> DepotWSConsumer:
        loop = asyncio.get_running_loop()
        inside, go_on = entered(), entered()

        def slow_open(*args: Any) -> Any:
            loop.call_soon_threadsafe(inside.set)
            asyncio.run_coroutine_threadsafe(go_on.wait(), loop).result(timeout=10)
            return open_socket(*args)

        with mock.patch.object(consumer_module, "_open_socket", slow_open):
            socket = Socket()
            await socket.app.send_input({"type": "websocket.connect"})
            assert (await socket.app.receive_output(5))["type"] == "websocket.accept"
            await socket.send({"type": "connection_init", "payload": {"authToken": token}})
            await inside.wait()
            await socket.app.send_input({"type": "websocket.disconnect", "code": 1001})
            await asyncio.sleep(0.05)  # the disconnect is being handled: let auth finish
            go_on.set()
            await socket.app.wait(5)
        return consumers.made[0]

    with consumers.patch:
        consumer = run(scenario)
    assert consumer.watcher is None
    assert consumer.counted_user is None
    assert sockets.open_for(owner.pk, "probe"), "the user's set is empty"
    sockets.closed_for(owner.pk, "probe")


def test_frames_are_checked_before_strawberry_reads_them() -> None:
    """What the check lets through is what strawberry can read without a TypeError."""
    from realtime.frames import _malformed

    good = [
        {"type": "connection_init"},
        {"type": "connection_init", "payload": {"authToken": "x"}},
        {"type": "ping", "payload": None},
        {"type": "pong"},
        {"type": "complete", "id": "1"},
        {"type": "subscribe", "id": "1", "payload": {"query": "{ a }", "variables": None}},
        {"type": "something else"},  # strawberry closes it with 4400 itself
    ]
    assert [_malformed(message) for message in good] == [None] * len(good)
    bad: list[Any] = [[], None, "x", {"type": "complete"}, {"type": "subscribe", "id": "1"}]
    assert all(_malformed(message) for message in bad)


def test_operations_on_a_socket_count_against_the_rate_limits(token: str, settings: Any) -> None:
    """Queries and mutations can go over the socket too: they count as HTTP requests do."""
    from tests.support.cache import clear_cache

    clear_cache()
    settings.DEPOT_RATE_LIMIT_TOKEN = (3, 60)

    async def scenario() -> list[Any]:
        socket = Socket()
        await socket.open(token)
        for n in range(4):
            await socket.subscribe(f"q{n}", "{ viewer { username } }", {})
        # A query's frames: its result, then its completion; the refused one: its error.
        ran = [await socket.collect(f"q{n}", 2) for n in range(3)]
        assert [[json.loads(f)["type"] for f in frames] for frames in ran] == [
            ["next", "complete"]
        ] * 3
        frames = [json.loads(frames[0]) for frames in ran]
        frames.append(json.loads((await socket.collect("q3", 1))[0]))
        assert await socket.app.receive_nothing(0.2), "nothing after the error"
        await socket.send({"type": "ping"})
        assert json.loads((await socket.app.receive_output(5))["text"]) == {"type": "pong"}
        return frames

    try:
        frames = run(scenario)
    finally:
        clear_cache()
    assert [frame["type"] for frame in frames] == ["next", "next", "next", "error"]
    assert frames[3]["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
