#!/usr/bin/env python3
"""HTTP read benchmark: wrk POST per contender, contenders alternated inside each repetition
(start order rotated per rep), a warm-up run discarded before each measured run.
Adapted from ../shared/bench-anchors/harness/http_bench.py.

usage: http_bench.py [--only a,b] [--reps 3] [--duration 8] [--warmup 2] [--connections 16]
                     [--wrk-cpu 1] [--verify results/verify.json] [--out results/http]
Writes <out>.json (all runs) and <out>.md (median table; ratios to the first contender, FLOOR,
and to strawberry-default).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time
from typing import Any

from common import HERE, QUERIES, RUN, auth_header, body_path, load_contenders, select, sql_count

LUA = os.path.join(HERE, "post.lua")
SECOND_REF = "strawberry-default"
TARGETS = {"asset": 0.75, "dashboard": 0.67}  # issue 3: depot req/s vs FLOOR


def wrk(url: str, body: str, seconds: int, conns: int, cpu: str | None) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "30s"]
    cmd += ["-s", LUA, url]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    env = dict(os.environ, BODY_FILE=body, AUTH_HEADER=auth_header())
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    m = re.search(r"^WRKJSON (\{.*\})$", out, re.M)
    if not m:
        raise RuntimeError(f"no WRKJSON in wrk output:\n{out}")
    r: dict[str, Any] = json.loads(m.group(1))
    r["errors"] = sum(v for k, v in r.items() if k.startswith("err_"))
    return r


def server_cpu(name: str) -> float | None:
    """utime+stime (s, all threads) of the contender's server process, from run.sh's pid file."""
    try:
        with open(os.path.join(RUN, "pids", f"{name}.pid")) as f:
            pid = int(f.read())
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settled_sql_count(url: str) -> int | None:
    """The server's statement counter once requests still in flight after wrk stopped are done."""
    last = sql_count(url)
    for _ in range(50):
        time.sleep(0.1)
        now = sql_count(url)
        if now == last:
            return now
        last = now
    return last


def summarize(runs: list[dict[str, Any]], names: list[str]) -> dict[tuple[str, str], Any]:
    table = {}
    for q in QUERIES:
        for n in names:
            rs = [r for r in runs if r["query"] == q and r["contender"] == n]
            if not rs:
                continue
            sql = [r["sql_per_request"] for r in rs if r.get("sql_per_request") is not None]
            cpu = [r["cpu_ms_per_request"] for r in rs if r.get("cpu_ms_per_request") is not None]
            table[(q, n)] = {
                "rps": statistics.median(r["rps"] for r in rs),
                "p50_ms": statistics.median(r["p50_us"] for r in rs) / 1000,
                "p99_ms": statistics.median(r["p99_us"] for r in rs) / 1000,
                "rps_all": [round(r["rps"], 1) for r in rs],
                "errors": sum(r["errors"] for r in rs),
                "sql_per_request_load": statistics.median(sql) if sql else None,
                "cpu_ms": statistics.median(cpu) if cpu else None,
            }
    return table


def markdown(
    table: dict[tuple[str, str], Any],
    names: list[str],
    meta: dict[str, Any],
    verify: dict[str, Any] | None,
) -> str:
    lines = [
        f"HTTP read benchmark, {meta['when']}: wrk -t1 -c{meta['connections']} "
        f"{meta['duration']}s after a {meta['warmup']}s warm-up, {meta['reps']} alternating reps, "
        f"medians. One uvicorn worker per contender on CPU {meta['server_cpu']}, wrk on CPU "
        f"{meta['wrk_cpu']}. Ratios are req/s against FLOOR and against {SECOND_REF}. Server CPU "
        "is the contender process's utime+stime over the run divided by the requests served; "
        "`CPU vs FLOOR` is FLOOR's CPU per request over the contender's (the steadier figure for "
        "a contender that completes few requests). SQL/request is counted by verify.py on an "
        "idle server.",
        "",
    ]
    for q in QUERIES:
        ref = table.get((q, names[0]))
        ref2 = table.get((q, SECOND_REF))
        if not ref:
            continue
        lines += [
            f"**{q}**",
            "",
            f"| contender | req/s | vs FLOOR | vs {SECOND_REF} | p50 ms | p99 ms "
            "| server CPU ms/request | CPU vs FLOOR | SQL/request | req/s per rep | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
        for n in names:
            t = table.get((q, n))
            if not t:
                continue
            sql = (verify or {}).get(q, {}).get(n, {}).get("sql_queries")
            vs2 = f"{t['rps'] / ref2['rps']:.2f}x" if ref2 else "-"
            cpu = "-" if t["cpu_ms"] is None else f"{t['cpu_ms']:.2f}"
            cpu_ratio = (
                f"{ref['cpu_ms'] / t['cpu_ms']:.2f}x" if t["cpu_ms"] and ref["cpu_ms"] else "-"
            )
            lines.append(
                f"| {n} | {t['rps']:.1f} | {t['rps'] / ref['rps']:.2f}x | {vs2} | "
                f"{t['p50_ms']:.1f} | {t['p99_ms']:.1f} | {cpu} | {cpu_ratio} | "
                f"{'-' if sql is None else sql} | "
                f"{', '.join(f'{x:.1f}' for x in t['rps_all'])} | {t['errors']} |"
            )
        lines.append("")
    goal = []
    for q, target in TARGETS.items():
        d, f = table.get((q, "depot")), table.get((q, names[0]))
        if d and f:
            ratio = d["rps"] / f["rps"]
            verdict = "met" if ratio >= target else "NOT met"
            goal.append(f"{q} {ratio:.2f}x (goal ≥ {target:.2f}x: {verdict})")
    if goal:
        lines += ["Issue 3 goal, depot vs FLOOR: " + "; ".join(goal) + ".", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contenders")
    ap.add_argument("--only")
    ap.add_argument("--queries", default=",".join(QUERIES))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--wrk-cpu", default="1", help="CPU to pin wrk to ('' = no pinning)")
    ap.add_argument("--server-cpu", default=os.environ.get("SERVER_CPU", "0"))
    ap.add_argument("--verify", help="verify.json, for the SQL/request column")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "results", "http"))
    ap.add_argument("--render", action="store_true", help="only rewrite <out>.md from <out>.json")
    a = ap.parse_args()
    if a.render:
        with open(a.out + ".json") as f:
            saved = json.load(f)
        verify = None
        if a.verify and os.path.exists(a.verify):
            with open(a.verify) as f:
                verify = json.load(f)
        names = [n for n, _ in saved["meta"]["contenders"]]
        saved["meta"].setdefault("server_cpu", a.server_cpu)
        md = markdown(summarize(saved["runs"], names), names, saved["meta"], verify)
        with open(a.out + ".md", "w") as f:
            f.write(md + "\n")
        print(md)
        return 0
    cs = select(load_contenders(a.contenders), a.only)
    names = [c[0] for c in cs]
    queries = [q for q in a.queries.split(",") if q]
    cpu = a.wrk_cpu if a.wrk_cpu != "" else None
    runs = []
    for rep in range(a.reps):
        order = cs[rep % len(cs) :] + cs[: rep % len(cs)]  # rotate the start contender
        for q in queries:
            for name, url in order:
                body = body_path(q)
                if a.warmup:
                    wrk(url, body, a.warmup, a.connections, cpu)
                before = settled_sql_count(url)
                cpu0 = server_cpu(name)
                r = wrk(url, body, a.duration, a.connections, cpu)
                cpu1 = server_cpu(name)
                after = settled_sql_count(url)
                r.update(contender=name, query=q, rep=rep, url=url)
                if before is not None and after is not None and r["requests"]:
                    r["sql_per_request"] = (after - before) / r["requests"]
                if cpu0 is not None and cpu1 is not None and r["requests"]:
                    r["cpu_ms_per_request"] = 1000 * (cpu1 - cpu0) / r["requests"]
                runs.append(r)
                print(
                    f"rep{rep} {q:9} {name:18} {r['rps']:8.1f} req/s  "
                    f"cpu {r.get('cpu_ms_per_request', 0):7.2f} ms/req  "
                    f"p50 {r['p50_us'] / 1000:7.2f} ms  p99 {r['p99_us'] / 1000:7.2f} ms  "
                    f"errors {r['errors']}",
                    flush=True,
                )
    meta = {
        "when": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "reps": a.reps,
        "duration": a.duration,
        "warmup": a.warmup,
        "connections": a.connections,
        "wrk_cpu": cpu,
        "server_cpu": a.server_cpu,
        "contenders": [list(c) for c in cs],
    }
    verify = None
    if a.verify and os.path.exists(a.verify):
        with open(a.verify) as f:
            verify = json.load(f)
    table = summarize(runs, names)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out + ".json", "w") as f:
        json.dump(
            {"meta": meta, "runs": runs, "medians": {f"{q}/{n}": v for (q, n), v in table.items()}},
            f,
            indent=1,
        )
    md = markdown(table, names, meta, verify)
    with open(a.out + ".md", "w") as f:
        f.write(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
