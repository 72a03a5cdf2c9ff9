"""Every redis-py client Depot makes opens its connections without redis-py's introductions
(CLIENT SETINFO, CLIENT MAINT_NOTIFICATIONS): Redis before 7.2 refuses them, so each new
connection cost three round trips and three exceptions (project/settings.py,
REDIS_CLIENT_OPTIONS). Checked on a Redis server of the test's own, whose statistics only this
test's connections can move."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.cache.backends.redis import RedisCache
from django.test import override_settings

from realtime import publish, sockets
from realtime.layers import ProcessReaderRedisChannelLayer
from tests.support.processes import ManagedProcess, free_port, wait_for_tcp

pytestmark = [
    pytest.mark.skipif(
        not settings.REDIS_URL, reason="needs Redis (REDIS_URL), as the services mode does"
    ),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(tmp_path)]
    with ManagedProcess(argv, log_dir=tmp_path, name="redis") as server:
        wait_for_tcp("127.0.0.1", port, 10, process=server)
        yield f"redis://127.0.0.1:{port}/0"


def _introductions(url: str) -> dict[str, Any]:
    """What the server counted of redis-py's introductions: the errors it answered (Redis before
    7.2) and the CLIENT SETINFO calls it ran (7.2 and later). Read on a connection that does not
    introduce itself, so reading does not count."""
    reader = redis.Redis.from_url(url, **settings.REDIS_CLIENT_OPTIONS)
    try:
        errors = reader.info("errorstats")
        commands = reader.info("commandstats")
    finally:
        reader.close()
    introduced = {name: stats for name, stats in commands.items() if "setinfo" in name}
    return {"errors": errors, "setinfo": introduced}


def _host(url: str) -> dict[str, Any]:
    layers: Any = settings.CHANNEL_LAYERS
    return {**layers["default"]["CONFIG"]["hosts"][0], "address": url}


def test_depots_redis_clients_connect_without_introductions(own_redis: str) -> None:
    url = own_redis
    before = _introductions(url)
    assert before == {"errors": {}, "setinfo": {}}

    # The channel layer (the process's reader included) and its publisher's client.
    async def through_the_layer() -> None:
        layer = ProcessReaderRedisChannelLayer(
            hosts=[_host(url)], prefix=f"depot-test-clients-{uuid.uuid4().hex[:8]}"
        )
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "hello"})
        assert (await asyncio.wait_for(layer.receive(channel), 5))["type"] == "hello"
        await layer.flush()

    asyncio.run(through_the_layer())
    publisher = publish._blocking_client(_host(url))
    assert publisher.ping()
    publisher.close()

    # The cache (rate limits, the credentials epoch), as settings.CACHES builds it.
    cache = RedisCache(url, {**settings.CACHES["default"], "LOCATION": url})
    cache.set("depot-test-clients", 1)
    assert cache.get("depot-test-clients") == 1
    cache.close()

    # The count of a user's sockets.
    with override_settings(REDIS_URL=url):
        sockets._redis.cache_clear()
        try:
            client, _ = sockets._redis()
            assert client.ping()
            client.close()
        finally:
            sockets._redis.cache_clear()

    assert _introductions(url) == before

    # The check sees them when they are sent: redis-py's defaults introduce themselves.
    plain = redis.Redis.from_url(url)
    assert plain.ping()
    plain.close()
    assert _introductions(url) != before
