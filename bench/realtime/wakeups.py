"""What one round trip to Postgres and to Redis costs on this box: back to back (hot), and after
20 ms idle, the pause between two jobs of the jobs phase (clients.py).

The mutation-to-client loop is a chain of hand-offs between processes (client, server, Redis,
Postgres, the worker's parent and child), each of which was asleep when its turn came. On a
small VM a process woken after a pause runs its first microseconds slowly (caches and branch
predictors cold, a virtual CPU to wake), so the same round trip costs several times its hot
figure. This probe prices that, beside the jobs phase, so that a run's loop figures can be read
against the box they ran on. Wall time and this process's CPU time per round trip.

    python -m bench.realtime.wakeups OUT.json   (DATABASE_URL and REDIS_URL from the environment)
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import redis

ROUNDS = 300
IDLE_SECONDS = 0.02


def _measure(call: Callable[[], Any], idle: float) -> dict[str, float]:
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(ROUNDS):
        if idle:
            time.sleep(idle)
        wall, cpu = time.perf_counter(), time.thread_time()
        call()
        cpus.append((time.thread_time() - cpu) * 1000)
        walls.append((time.perf_counter() - wall) * 1000)
    walls.sort()
    cpus.sort()
    return {
        "wall_p50_ms": walls[len(walls) // 2],
        "wall_p90_ms": walls[int(len(walls) * 0.9)],
        "cpu_p50_ms": cpus[len(cpus) // 2],
    }


def main() -> None:
    out = Path(sys.argv[1])
    database = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    cache = redis.Redis.from_url(os.environ["REDIS_URL"])
    calls: dict[str, Callable[[], Any]] = {
        "postgres SELECT 1": lambda: database.execute("SELECT 1").fetchone(),
        "redis PING": cache.ping,
    }
    results: dict[str, Any] = {"rounds": ROUNDS, "idle_ms": IDLE_SECONDS * 1000, "calls": {}}
    for name, call in calls.items():
        call()
        results["calls"][name] = {"hot": _measure(call, 0), "idle": _measure(call, IDLE_SECONDS)}
    database.close()
    cache.close()
    out.write_text(json.dumps(results, indent=1))
    for name, figures in results["calls"].items():
        hot, idle = figures["hot"], figures["idle"]
        print(
            f"{name}: hot {hot['wall_p50_ms']:.3f} ms, after {IDLE_SECONDS * 1000:.0f} ms idle "
            f"{idle['wall_p50_ms']:.3f} ms (client CPU {hot['cpu_p50_ms']:.3f} -> "
            f"{idle['cpu_p50_ms']:.3f} ms)"
        )


if __name__ == "__main__":
    main()
