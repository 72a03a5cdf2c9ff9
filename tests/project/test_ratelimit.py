"""Admission's one Redis command (project/ratelimit.py): counters with their window's expiry,
and the version stamp that the credentials cache keys on, against a real Redis."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache.backends.redis import RedisCacheClient

from project import ratelimit
from tests.support.cache import clear_cache


@pytest.fixture
def redis_client() -> Any:
    clear_cache()
    backend = getattr(ratelimit.shared_cache(), "_cache", None)
    if not isinstance(backend, RedisCacheClient):
        pytest.skip("needs the Redis cache (services mode)")
    return backend.get_client(write=True)


def _raw(key: str) -> str:
    return ratelimit.shared_cache().make_and_validate_key(key)


def test_counters_count_expire_and_refuse_over_the_limit(redis_client: Any) -> None:
    checks = [("ip", "10.0.0.1", (3, 60)), ("token", "dpt_x", (2, 10))]
    verdicts = [ratelimit.hit_all(checks) for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert 1 <= verdicts[2].retry_after <= 10
    ip_key = _raw(ratelimit._key("ip", "10.0.0.1", 60))
    token_key = _raw(ratelimit._key("token", "dpt_x", 10))
    assert int(redis_client.get(ip_key)) == 3
    assert 0 < redis_client.ttl(ip_key) <= 61
    assert 0 < redis_client.ttl(token_key) <= 11
    assert verdicts[0].version is None  # not asked for


def test_the_version_stamp_is_created_once_then_read(redis_client: Any) -> None:
    checks = [("ip", "10.0.0.2", (100, 60))]
    first = ratelimit.hit_all(checks, version_key="test:stamp")
    again = ratelimit.hit_all(checks, version_key="test:stamp")
    assert isinstance(first.version, int)
    assert again.version == first.version
    # what domain.accounts.credentials does when credentials change
    ratelimit.shared_cache().set("test:stamp", 12345, timeout=None)
    assert ratelimit.hit_all(checks, version_key="test:stamp").version == 12345
    # a store that lost it (a restart) gets a fresh one
    redis_client.delete(_raw("test:stamp"))
    fresh = ratelimit.hit_all(checks, version_key="test:stamp").version
    assert isinstance(fresh, int)
    assert fresh != 12345


def test_a_store_that_fails_lets_the_request_in_without_a_stamp(
    redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("redis went away")

    monkeypatch.setattr(ratelimit, "_count_pipelined", broken)
    verdict = ratelimit.hit_all([("ip", "10.0.0.3", (1, 60))], version_key="test:stamp")
    assert verdict.allowed
    assert verdict.version is None
