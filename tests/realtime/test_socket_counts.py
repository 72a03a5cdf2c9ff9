"""The per-user limit on open websockets (realtime.sockets), in Redis and in memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

from realtime import sockets


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
