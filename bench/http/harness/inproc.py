#!/usr/bin/env python3
"""CPU per request of one contender, in process: the ASGI app called directly, N requests in a
row, timed with the process's CPU clock (this process only: Postgres and Redis excluded). Much
steadier than wrk on a shared VM, and the same driver runs under cProfile or py-spy.

usage (after `KEEP_DB=1 bench/http/run.sh setup`, which seeds depot_bench and writes .run/):
  inproc.py depot|depot-uncached|floor|strawberry-default asset|dashboard [-n N] [--warmup N]
            [-c IN_FLIGHT] [--check] [--hops] [--sql] [--profile FILE]
The environment defaults to run.sh's (Postgres and Redis on 127.0.0.1, production settings);
anything already set wins. The query is any body in .run/bodies/ (asset, dashboard, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
RUN = Path(os.environ.get("BENCH_RUN_DIR", HERE.parent / ".run"))

# As run.sh exports them.
DEFAULTS = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/depot_bench",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "REDIS_KEY_PREFIX": "depotbench",
    "DEPOT_QUEUE_PREFIX": "depotbench",
    "DEPOT_ENV": "production",
    "DJANGO_SECRET_KEY": "bench-not-a-secret-inproc-0123456789-0123456789-0123456789",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    "DEPOT_VAR_DIR": str(RUN / "var"),
    "DEPOT_LOG_LEVEL": "WARNING",
    "DEPOT_RATE_LIMIT_TOKEN": "1000000000/60",
    "DEPOT_RATE_LIMIT_IP": "1000000000/60",
}

SETUPS = {
    "depot": ("bench.http.settings_depot", "project.asgi", "/graphql/", "30"),
    "depot-uncached": ("bench.http.settings_depot", "project.asgi", "/graphql/", "0"),
    "floor": ("bench.http.settings_peers", "bench.http.asgi_peers", "/floor/", "30"),
    "strawberry-default": (
        "bench.http.settings_peers",
        "bench.http.asgi_peers",
        "/strawberry-default/",
        "30",
    ),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("contender", choices=sorted(SETUPS))
    ap.add_argument("query", help="a body in .run/bodies/ (asset, dashboard, ...)")
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--profile")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument(
        "-c", type=int, default=1, help="requests in flight at once (wrk runs 4 connections)"
    )
    ap.add_argument("--hops", action="store_true", help="count sync_to_async calls by function")
    ap.add_argument("--sql", action="store_true", help="print the SQL of one request, then stop")
    ap.add_argument(
        "--check",
        action="store_true",
        help="compare every response with the warm-up's and count those that differ",
    )
    a = ap.parse_args()
    settings_module, app_module, path, read_cache = SETUPS[a.contender]
    settings_module = os.environ.get("INPROC_SETTINGS", settings_module)
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    os.environ["DEPOT_READ_CACHE_SECONDS"] = read_cache
    import importlib

    import uvloop

    app = importlib.import_module(app_module).application
    body = (RUN / "bodies" / f"{a.query}.json").read_bytes()
    token = (RUN / "token").read_text().strip()
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8201),
    }

    async def one() -> tuple[int, bytes]:
        sent = False
        out: list[bytes] = []
        status = [0]

        async def receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                out.append(message.get("body", b""))

        await app(dict(scope), receive, send)
        return status[0], b"".join(out)

    async def run() -> None:
        for _ in range(a.warmup):
            status, raw = await one()
        doc = json.loads(raw)
        assert os.environ.get("INPROC_ANY_STATUS") or (status == 200 and not doc.get("errors")), (
            status,
            raw[:300],
        )
        if a.sql:
            from django.db.backends import utils

            run_sql = utils.CursorWrapper._execute

            def printed(self, sql, params, *args, **kwargs):  # type: ignore[no-untyped-def]
                print(f"{sql}\n  -- {params}")
                return run_sql(self, sql, params, *args, **kwargs)

            utils.CursorWrapper._execute = printed  # type: ignore[method-assign]
            await one()
            return
        hops: collections.Counter[str] = collections.Counter()
        if a.hops:
            from asgiref import sync

            original = sync.SyncToAsync.__call__

            async def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
                func = self.func
                name = getattr(func, "__qualname__", None) or type(func).__qualname__
                hops[f"{getattr(func, '__module__', '?')}.{name}"] += 1
                return await original(self, *args, **kwargs)

            sync.SyncToAsync.__call__ = counted  # type: ignore[method-assign]
        if a.hops:
            import redis

            for cls in (redis.Redis, redis.ConnectionPool, redis.Connection):
                init = cls.__init__

                def counting(self, *args, _init=init, _name=cls.__name__, **kwargs):  # type: ignore[no-untyped-def]
                    hops[f"(constructed) redis.{_name}"] += 1
                    _init(self, *args, **kwargs)

                cls.__init__ = counting  # type: ignore[method-assign]
        profiler = cProfile.Profile() if a.profile else None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        differing = 0
        for _ in range(a.n // a.c):
            if a.c == 1:
                answers = [await one()]
            else:
                answers = await asyncio.gather(*(one() for _ in range(a.c)))
            if a.check:
                differing += sum(answer != (status, raw) for answer in answers)
        if profiler:
            profiler.disable()
            profiler.dump_stats(a.profile)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        if a.check:
            print(f"responses that differ from the warm-up's: {differing} of {a.n}")
        for name, count in hops.most_common():
            print(f"  {count / a.n:6.2f} hops/request  {name}")
        print(
            f"{a.contender} {a.query}: {1000 * cpu / a.n:.3f} ms CPU/request, "
            f"{1000 * wall / a.n:.3f} ms wall/request over {a.n}"
            + (f", {a.c} at once" if a.c > 1 else "")
        )

    uvloop.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
