"""The per-user limit on open websockets (realtime.sockets), in Redis and in memory, and what a
client over it is told."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

from domain.accounts.models import User
from realtime import sockets
from tests.realtime.sockets import Socket, run


@pytest.fixture(params=["redis", "memory"])
def store(request: Any, settings: Any) -> Iterator[str]:
    settings.DEPOT_WS_MAX_SOCKETS_PER_USER = 3
    settings.DEPOT_WS_RECHECK_SECONDS = 30.0
    if request.param == "redis":
        if not settings.REDIS_URL:
            pytest.skip("needs Redis")
    else:
        settings.REDIS_URL = ""
    yield request.param
    for n in range(10):
        sockets.closed_for(4242, f"s{n}")


def _at(seconds: float) -> Any:
    return mock.patch("realtime.sockets.time.time", return_value=1_000_000.0 + seconds)


def test_the_limit_counts_open_sockets_and_a_closed_one_frees_its_place(store: str) -> None:
    with _at(0):
        assert [sockets.open_for(4242, f"s{n}") for n in range(4)] == [True, True, True, False]
        sockets.closed_for(4242, "s1")
        assert sockets.open_for(4242, "s4")
        assert not sockets.open_for(4242, "s5")
        assert sockets.open_for(4242, "s0"), "a socket already counted is not refused"


def test_sockets_of_a_dead_process_stop_counting_while_a_live_one_keeps_renewing(
    store: str,
) -> None:
    ttl = 30.0 * 2 + 5
    with _at(0):
        assert all(sockets.open_for(4242, f"s{n}") for n in range(3))  # s1, s2: a dead process
    for elapsed in (25.0, 50.0):  # s0 lives on and is renewed by its re-checks
        with _at(elapsed):
            sockets.still_open(4242, "s0")
            assert not sockets.open_for(4242, "s3")
    with _at(ttl + 1):
        assert sockets.open_for(4242, "s3")
        assert sockets.open_for(4242, "s4")
        assert not sockets.open_for(4242, "s5")


def test_without_redis_sockets_are_allowed(settings: Any) -> None:
    settings.DEPOT_WS_MAX_SOCKETS_PER_USER = 3
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    sockets._redis.cache_clear()
    try:
        assert all(sockets.open_for(4242, f"s{n}") for n in range(5))
    finally:
        sockets._redis.cache_clear()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_socket_over_the_limit_is_told_to_try_again_later_and_the_others_go_on(
    token: str, owner: User, settings: Any
) -> None:
    """Before, it closed with 4403 "Forbidden", which clients take for bad credentials: the
    dashboard showed the user signed out and stopped reconnecting."""
    settings.DEPOT_WS_MAX_SOCKETS_PER_USER = 2

    async def scenario() -> tuple[dict[str, Any], str]:
        open_ones = [Socket() for _ in range(2)]
        for socket in open_ones:
            await socket.open(token)
        over = Socket()
        await over.app.send_input({"type": "websocket.connect"})
        assert (await over.app.receive_output(5))["type"] == "websocket.accept"
        await over.send({"type": "connection_init", "payload": {"authToken": token}})
        refused = await over.app.receive_output(5)
        await over.app.wait(5)
        # The others are untouched, and a place freed lets the next one in.
        await open_ones[0].send({"type": "ping"})
        pong = (await open_ones[0].app.receive_output(5))["text"]
        await open_ones[1].close()
        again = Socket()
        await again.open(token)  # asserts the ack
        for socket in (open_ones[0], again):
            await socket.close()
        return refused, pong

    refused, pong = run(scenario)
    assert refused["type"] == "websocket.close"
    assert refused["code"] == 1013  # Try Again Later: graphql-ws clients retry it
    assert refused["reason"].startswith("TOO_MANY_SOCKETS")
    assert json.loads(pong) == {"type": "pong"}
    # Every socket was forgotten: the user's two places are free.
    assert [sockets.open_for(owner.pk, probe) for probe in ("p1", "p2")] == [True, True]
    for probe in ("p1", "p2"):
        sockets.closed_for(owner.pk, probe)
