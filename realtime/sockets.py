"""How many GraphQL websockets each user has open, across web processes.

Each open socket is a member of its user's set with an expiry time, renewed by the socket's
periodic re-check. A socket counts only until its expiry: the sockets of a process that died
without closing them stop counting after two re-check intervals, even while the user's other
sockets stay busy (a single shared counter kept them counted as long as any socket lived).

Redis (a sorted set per user, scored by expiry, changed by one script) in services mode; a dict
in embedded mode, where there is one web process.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import cache
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

# KEYS[1]: the user's set. ARGV: now, this socket's expiry, the limit, the socket, key TTL.
_OPEN_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) == false
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def _ttl() -> float:
    return settings.DEPOT_WS_RECHECK_SECONDS * 2 + 5


@cache
def _redis() -> Any:
    import redis

    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=5, **settings.REDIS_CLIENT_OPTIONS
    )
    return client, client.register_script(_OPEN_SCRIPT)


def _key(user_id: int) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:ws:sockets:{user_id}"


class _LocalSockets:
    """The same, in this process's memory (embedded mode)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.expiries: dict[int, dict[str, float]] = {}

    def open(self, user_id: int, socket_id: str, now: float, limit: int) -> bool:
        with self.lock:
            live = {
                socket: expiry
                for socket, expiry in self.expiries.get(user_id, {}).items()
                if expiry > now
            }
            if socket_id not in live and len(live) >= limit:
                self.expiries[user_id] = live
                return False
            live[socket_id] = now + _ttl()
            self.expiries[user_id] = live
            return True

    def renew(self, user_id: int, socket_id: str, now: float) -> None:
        with self.lock:
            sockets = self.expiries.setdefault(user_id, {})
            sockets[socket_id] = now + _ttl()

    def close(self, user_id: int, socket_id: str) -> None:
        with self.lock:
            self.expiries.get(user_id, {}).pop(socket_id, None)


_local = _LocalSockets()


def open_for(user_id: int, socket_id: str) -> bool:
    """Count a new socket; False (and not counted) if the user is at the limit.

    Fails open: without the shared store the limit cannot be enforced, and refusing every
    socket would be worse than allowing a few too many."""
    now, limit = time.time(), settings.DEPOT_WS_MAX_SOCKETS_PER_USER
    if not settings.REDIS_URL:
        return _local.open(user_id, socket_id, now, limit)
    try:
        _, open_script = _redis()
        ttl = int(_ttl()) + 1
        allowed = open_script(keys=[_key(user_id)], args=[now, now + _ttl(), limit, socket_id, ttl])
    except Exception:
        logger.warning("socket counter unavailable; allowing the socket", exc_info=True)
        return True
    return bool(allowed)


def still_open(user_id: int, socket_id: str) -> None:
    """Renew the socket's place (its periodic re-check calls this)."""
    now = time.time()
    if not settings.REDIS_URL:
        _local.renew(user_id, socket_id, now)
        return
    try:
        client, _ = _redis()
        with client.pipeline(transaction=True) as pipe:
            pipe.zadd(_key(user_id), {socket_id: now + _ttl()})
            pipe.expire(_key(user_id), int(_ttl()) + 1)
            pipe.execute()
    except Exception:
        logger.warning("socket counter unavailable", exc_info=True)


def closed_for(user_id: int, socket_id: str) -> None:
    if not settings.REDIS_URL:
        _local.close(user_id, socket_id)
        return
    try:
        client, _ = _redis()
        client.zrem(_key(user_id), socket_id)
    except Exception:  # the store is down: the socket's entry expires by itself
        logger.debug("socket not removed from its user's set", exc_info=True)
