"""Fixed-window rate limits in Django's cache (Redis in services mode, memory when embedded),
and the process-wide cache instance that every per-request user of the cache shares."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)


class _OneClientPerPool(RedisCacheClient):
    """Django's Redis client builds a new `redis.Redis` for every command, which copies its
    few hundred response callbacks each time (about 0.15 ms of CPU per command)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(  # type: ignore[attr-defined]
                connection_pool=pool
            )
        return client


_shared: list[BaseCache] = []
_shared_lock = threading.Lock()


def shared_cache() -> BaseCache:
    """The default cache as one instance per process, with one connection pool.

    `django.core.cache.cache` is per async context: under ASGI every request got a fresh cache
    object, hence a fresh Redis connection pool and a new TCP connection to Redis (with its
    handshake) for the first command of every request. Rate limits, the read cache and the
    persisted queries run on every request, so they use this instead.
    """
    if _shared:
        return _shared[0]
    with _shared_lock:
        if not _shared:
            instance = caches.create_connection("default")
            if isinstance(instance, RedisCache):
                # Read by its `_cache` on first use.
                instance._class = _OneClientPerPool  # type: ignore[attr-defined]
            _shared.append(instance)
    return _shared[0]


@receiver(setting_changed)
def _forget_shared_cache(*, setting: str, **kwargs: Any) -> None:
    if setting == "CACHES":
        _shared.clear()


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int
    # With hit_all(version_key=...): that key's value, read in the same round trip (created
    # with a random value if absent); None if the store could not be asked.
    version: int | None = None


def hit(scope: str, identity: str, rate: tuple[int, int]) -> Verdict:
    """Count one request of `identity` against `rate` (count per seconds).

    If the cache is down the request is allowed: an outage of Redis must not take the API
    down with it (durable data lives in Postgres), so limits fail open and say so in the log.
    """
    try:
        return _hit(scope, identity, rate)
    except Exception:
        logger.warning("rate limit store unavailable; allowing the request", exc_info=True)
        return Verdict(allowed=True, retry_after=0)


def hit_all(
    checks: list[tuple[str, str, tuple[int, int]]], *, version_key: str | None = None
) -> Verdict:
    """Count one request against several limits at once; the first one exceeded wins.

    On Redis this is one pipelined round trip for all of them (every API request pays it),
    which also reads `version_key` if given: a version stamp that some other writer moves
    (domain.accounts.credentials), read here so that it costs no round trip of its own.
    """
    try:
        counts, version = _count_pipelined(checks, version_key)
    except Exception:
        logger.warning("rate limit store unavailable; allowing the request", exc_info=True)
        return Verdict(allowed=True, retry_after=0)
    if counts is None:  # not Redis: one at a time
        for scope, identity, rate in checks:
            verdict = hit(scope, identity, rate)
            if not verdict.allowed:
                return verdict
        return Verdict(allowed=True, retry_after=0, version=_version(version_key))
    for (_, _, (limit, seconds)), count in zip(checks, counts, strict=True):
        if count > limit:
            return Verdict(allowed=False, retry_after=_retry_after(seconds))
    return Verdict(allowed=True, retry_after=0, version=version)


# One command for a request's admission: its counters (incremented, and given their window's
# expiry when new) and the version stamp (created with a fresh value when absent, then read).
# KEYS: the counters, then the stamp if asked for. ARGV: the number of counters, each counter's
# expiry in seconds, then the fresh stamp.
_ADMISSION_SCRIPT = """
local counters = tonumber(ARGV[1])
local out = {}
for i = 1, counters do
  out[i] = redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[i + 1], 'NX')
end
if #KEYS > counters then
  local stamp = KEYS[counters + 1]
  redis.call('SET', stamp, ARGV[counters + 2], 'NX')
  out[counters + 1] = redis.call('GET', stamp)
end
return out
"""
_scripts: dict[int, tuple[Any, Any]] = {}  # id(client) -> (client, its script)


def _count_pipelined(
    checks: list[tuple[str, str, tuple[int, int]]], version_key: str | None
) -> tuple[list[int] | None, int | None]:
    """The counts (and the stamp) in one round trip and one command: a script, since a
    pipeline of INCR, EXPIRE, SET and GET cost the client more CPU (packing and parsing each
    command) than the Redis call itself."""
    cache = shared_cache()
    backend = getattr(cache, "_cache", None)
    if not isinstance(backend, RedisCacheClient):
        return None, None
    client = backend.get_client(write=True)
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = (client, client.register_script(_ADMISSION_SCRIPT))
    keys = [
        cache.make_and_validate_key(_key(scope, identity, s)) for scope, identity, (_, s) in checks
    ]
    args: list[int] = [len(checks), *(seconds + 1 for _, _, (_, seconds) in checks)]
    if version_key is not None:
        # An int, which Django's Redis cache stores as is (it pickles anything else).
        keys.append(cache.make_and_validate_key(version_key))
        args.append(new_stamp())
    replies = script[1](keys=keys, args=args)
    counts = [int(count) for count in replies[: len(checks)]]
    if version_key is None:
        return counts, None
    return counts, None if replies[-1] is None else int(replies[-1])


def _version(version_key: str | None) -> int | None:
    """The stamp from a cache other than Redis (the embedded mode's memory)."""
    if version_key is None:
        return None
    try:
        cache = shared_cache()
        cache.add(version_key, new_stamp(), timeout=None)
        value = cache.get(version_key)
    except Exception:
        logger.warning("cache unavailable; no version stamp", exc_info=True)
        return None
    return value if isinstance(value, int) else None


def new_stamp() -> int:
    """A fresh random version stamp (see Verdict.version)."""
    return secrets.randbits(62)


def _key(scope: str, identity: str, seconds: int) -> str:
    window = int(time.time() // seconds)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    return f"rate:{scope}:{digest}:{window}"


def _retry_after(seconds: int) -> int:
    window = int(time.time() // seconds)
    return max(1, (window + 1) * seconds - int(time.time()))


def _hit(scope: str, identity: str, rate: tuple[int, int]) -> Verdict:
    limit, seconds = rate
    window = int(time.time() // seconds)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    key = f"rate:{scope}:{digest}:{window}"
    cache = shared_cache()
    # incr() is atomic in Redis and the local-memory cache; the first request of a window
    # creates the key (with its expiry), so the common case is one round trip.
    try:
        count = cache.incr(key)
    except ValueError:
        # add() fails only if another request created the key meanwhile.
        count = 1 if cache.add(key, 1, timeout=seconds + 1) else cache.incr(key)
    retry_after = max(1, (window + 1) * seconds - int(time.time()))
    return Verdict(allowed=count <= limit, retry_after=retry_after)


def peek(scope: str, identity: str, rate: tuple[int, int]) -> Verdict:
    """Whether `identity` is over `rate`, without counting (for failed logins)."""
    limit, seconds = rate
    window = int(time.time() // seconds)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    try:
        count = shared_cache().get(f"rate:{scope}:{digest}:{window}", 0)
    except Exception:
        logger.warning("rate limit store unavailable; allowing the request", exc_info=True)
        count = 0
    retry_after = max(1, (window + 1) * seconds - int(time.time()))
    return Verdict(allowed=count < limit, retry_after=retry_after)


def client_ip(request: HttpRequest) -> str:
    # Behind a proxy, configure it to set REMOTE_ADDR (e.g. uvicorn --proxy-headers).
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def too_many(verdict: Verdict, message: str) -> JsonResponse:
    response = JsonResponse(
        {"errors": [{"message": message, "extensions": {"code": "RATE_LIMITED"}}]}, status=429
    )
    response["Retry-After"] = str(verdict.retry_after)
    return response
