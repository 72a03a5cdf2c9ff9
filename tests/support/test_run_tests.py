"""scripts/run_tests.py: a run leaves nothing of its own in the shared Redis."""

from __future__ import annotations

import importlib.util
import os
import uuid
from pathlib import Path
from types import ModuleType

import redis

ROOT = Path(__file__).resolve().parents[2]


def _run_tests_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_tests", ROOT / "scripts" / "run_tests.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_runs_keys_go_and_no_other() -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"depot-test-probe-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url)
    ours = [f"{prefix}:celery:_kombu.binding.x", f"{prefix}:cache:1:credentials:epoch"]
    others = [f"{prefix}x:look-alike", f"other-{prefix}:kept"]
    try:
        for key in ours + others:
            client.set(key, "1")
        assert _run_tests_script().delete_redis_keys(url, prefix) == len(ours)
        assert client.exists(*ours) == 0
        assert client.exists(*others) == len(others)
    finally:
        client.delete(*ours, *others)
        client.close()
