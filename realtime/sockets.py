"""How many GraphQL websockets each user has open (a shared counter, so across web processes).

The counter expires unless a live socket touches it, so sockets of a process that died without
closing them stop counting after two re-check intervals.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)


def _key(user_id: int) -> str:
    return f"ws:sockets:{user_id}"


def _ttl() -> int:
    return int(settings.DEPOT_WS_RECHECK_SECONDS * 2) + 5


def open_for(user_id: int) -> bool:
    """Count a new socket; False (and not counted) if the user is at the limit.

    Fails open: without the shared store the limit cannot be enforced, and refusing every
    socket would be worse than allowing a few too many."""
    try:
        return _open_for(user_id)
    except Exception:
        logger.warning("socket counter unavailable; allowing the socket", exc_info=True)
        return True


def _open_for(user_id: int) -> bool:
    key = _key(user_id)
    cache.add(key, 0, timeout=_ttl())
    count = cache.incr(key)
    cache.touch(key, timeout=_ttl())
    if count > settings.DEPOT_WS_MAX_SOCKETS_PER_USER:
        cache.decr(key)
        return False
    return True


def closed_for(user_id: int) -> None:
    try:
        if cache.decr(_key(user_id)) < 0:
            cache.set(_key(user_id), 0, timeout=_ttl())
    except Exception:  # expired meanwhile, or the store is down: the counter expires by itself
        logger.debug("socket counter not decremented", exc_info=True)


def still_open(user_id: int) -> None:
    try:
        cache.touch(_key(user_id), timeout=_ttl())
    except Exception:
        logger.warning("socket counter unavailable", exc_info=True)
