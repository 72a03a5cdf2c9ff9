"""Emptying this run's cache without touching anyone else's keys.

Django's RedisCache.clear() is FLUSHDB: it would wipe every key of the Redis database, which
the channel layer, the broker and other test runs (each under its own prefix) share with us.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCacheClient


def clear_cache() -> None:
    client = getattr(cache, "_cache", None)
    if not isinstance(client, RedisCacheClient):
        cache.clear()
        return
    redis = client.get_client(write=True)
    pattern = f"{settings.CACHES['default']['KEY_PREFIX']}:*"
    batch: list[bytes] = []
    for key in redis.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            redis.delete(*batch)
            batch.clear()
    if batch:
        redis.delete(*batch)
