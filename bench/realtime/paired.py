"""Paired A/B of the mutation-to-client loop: two code trees, each with its own server, worker,
database and Redis database, running at the same time; no-op jobs alternate between them
(A B B A …), so both see the same load. On a shared, busy 2-core box, separate runs of the
jobs phase moved by ±10 ms from one to the next, far more than the changes being compared.

    bench/realtime/paired.sh TREE_A TREE_B [JOBS]      # the wrapper: starts, drives, stops
    START=retry bench/realtime/paired.sh …             # started by jobRetry (GraphQL), not the view

Prints p50/p90/p99 per side and the p50 of the per-pair differences (B - A).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.realtime.clients import (
    JOB_SUB,
    RETRY_MUTATION,
    KeptHTTP,
    Subscriber,
    Tally,
    _gid_pk,
)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[max(0, min(len(values) - 1, round(q / 100 * (len(values) - 1))))]


class Side:
    def __init__(self, name: str, port: int, seed: str, start: str) -> None:
        self.name, self.port, self.start = name, port, start
        self.workspace = json.loads(Path(seed).read_text())["workspaces"][9]
        # For --start retry: the side's cancelled bench.noop jobs (paired.sh has its own tree's
        # producer make them, next to its seed).
        retries = Path(seed).with_name("cancelled.json")
        self.retries: list[str] = json.loads(retries.read_text()) if start == "retry" else []
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.seen: dict[str, float] = {}
        self.sub = Subscriber("depot", 0, Tally())
        self.sub.on_event = self._on_event
        self.http = KeptHTTP(
            f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {self.workspace['token']}"}
        )
        self.loops: list[float] = []
        self.rows: list[dict[str, Any]] = []  # as clients.py's jobs.json, for trace_report.py

    def _on_event(self, event: dict[str, Any], t: float) -> None:
        if event.get("type") in ("job.succeeded", "job.failed", "job.cancelled"):
            job = event["payload"]["jobId"]
            self.seen[job] = t
            future = self.waiting.pop(job, None)
            if future is not None and not future.done():
                future.set_result(t)

    async def open(self) -> None:
        await self.sub.open(f"ws://127.0.0.1:{self.port}", self.workspace, query=JOB_SUB)

    async def one(self, wait_s: float = 10, keep: bool = False) -> float:
        t0 = time.time()
        if self.start == "retry" and keep:
            status, body = await self.http.post(
                "/graphql/", {"query": RETRY_MUTATION, "variables": {"id": self.retries.pop()}}
            )
            t_http = time.time()
            payload = body["data"]["jobRetry"]
            if status != 200 or payload["errors"]:
                raise RuntimeError(f"jobRetry answered {status}: {payload['errors']}")
            job = payload["job"]["id"]
            body = {"pk": _gid_pk(job)}
        else:  # the bench's view, also to wait for the worker and warm up
            status, body = await self.http.post("/bench/noop/", {"workspace": self.workspace["pk"]})
            t_http = time.time()
            if status != 200:
                raise RuntimeError(f"/bench/noop/ answered {status}: {body}")
            job = body["jobId"]
        if job in self.seen:
            seen = self.seen[job]
        else:
            future = asyncio.get_running_loop().create_future()
            self.waiting[job] = future
            seen = await asyncio.wait_for(future, wait_s)
        if keep:
            self.rows.append({"pk": body["pk"], "t0": t0, "http": t_http, "seen": seen})
        return (seen - t0) * 1e3

    async def close(self) -> None:
        await self.sub.close()
        await self.http.close()


async def amain() -> dict[str, Any]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="PORT:SEED of side A")
    ap.add_argument("--b", required=True, help="PORT:SEED of side B")
    ap.add_argument("--jobs", type=int, default=200, help="per side")
    ap.add_argument("--gap", type=float, default=0.02)
    ap.add_argument("--out", default="")
    ap.add_argument(
        "--start",
        choices=("noop", "retry"),
        default="noop",
        help="noop: the bench's view (job_create); retry: the jobRetry mutation over GraphQL",
    )
    a = ap.parse_args()
    sides = []
    for name, spec in (("A", a.a), ("B", a.b)):
        port, seed = spec.split(":", 1)
        sides.append(Side(name, int(port), seed, a.start))
    try:
        for side in sides:
            await side.open()
            for _ in range(60):  # the worker starts meanwhile
                try:
                    await side.one(2.0)
                    break
                except TimeoutError:
                    continue
            for _ in range(5):
                await side.one()
        differences = []
        for n in range(a.jobs):
            order = sides if n % 2 == 0 else sides[::-1]
            pair = {}
            for side in order:
                pair[side.name] = await side.one(keep=True)
                side.loops.append(pair[side.name])
                await asyncio.sleep(a.gap)
            differences.append(pair["B"] - pair["A"])
        result: dict[str, Any] = {}
        for side in sides:
            result[side.name] = {q: round(pct(side.loops, q), 2) for q in (50, 90, 99)}
            print(
                f"{side.name}: p50 {pct(side.loops, 50):.2f} p90 {pct(side.loops, 90):.2f} "
                f"p99 {pct(side.loops, 99):.2f} ms over {len(side.loops)}"
            )
        result["B-A p50"] = round(statistics.median(differences), 2)
        print(
            f"B - A, per pair: p50 {statistics.median(differences):+.2f} ms, "
            f"B faster in {sum(d < 0 for d in differences)} of {len(differences)} pairs"
        )
        rows = {f"{side.name}_rows": side.rows for side in sides}
        return result | {"out": a.out, **rows}
    finally:
        for side in sides:
            await side.close()


def main() -> None:
    result = asyncio.run(amain())
    if result["out"]:
        out = Path(result["out"])
        out.write_text(json.dumps(result))
        for side in ("A", "B"):  # trace_report.py reads jobs.json's "noop" rows
            jobs = {"noop": {"rows": result[f"{side}_rows"]}}
            out.with_name(f"jobs-{side}.json").write_text(json.dumps(jobs))


if __name__ == "__main__":
    main()
