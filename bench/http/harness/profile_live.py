#!/usr/bin/env python3
"""Profile the running contenders under the benchmark's own load: py-spy samples the server
process (only the thread holding the GIL, i.e. where its CPU goes) while wrk drives one query,
and the server's CPU time (/proc) is divided by the requests served. Needs py-spy (run.sh
profile installs it into bench/http/.venv-tools) and the servers started by run.sh.

usage: profile_live.py [--only depot,floor] [--queries dashboard,asset] [--duration 15]
                       [--rate 100] [--out results/profile]
Writes <out>/<contender>-<query>.txt.gz (raw collapsed stacks) and <out>/summary.md.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import time

from common import BENCH, QUERIES, RUN, body_path, load_contenders, select
from http_bench import wrk
from stacks import NAMED, SCOPES, load, summarise

PYSPY = os.path.join(BENCH, ".venv-tools", "bin", "py-spy")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime, all threads


def profile_one(name: str, url: str, query: str, a: argparse.Namespace) -> dict[str, object]:
    with open(os.path.join(RUN, "pids", f"{name}.pid")) as f:
        pid = int(f.read())
    raw = os.path.join(a.out, f"{name}-{query}.txt")
    wrk(url, body_path(query), 2, a.connections, a.wrk_cpu)  # warm-up
    spy = subprocess.Popen(
        [
            "taskset",
            "-c",
            a.wrk_cpu,
            PYSPY,
            "record",
            "-p",
            str(pid),
            "-d",
            str(a.duration + 2),
            "-r",
            str(a.rate),
            "--gil",
            "--nolineno",
            "-f",
            "raw",
            "-o",
            raw,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)
    cpu0 = cpu_seconds(pid)
    r = wrk(url, body_path(query), a.duration, a.connections, a.wrk_cpu)
    cpu1 = cpu_seconds(pid)
    _, err = spy.communicate(timeout=a.duration + 60)
    if spy.returncode != 0:
        raise RuntimeError(f"py-spy failed: {err}")
    cpu_ms = 1000 * (cpu1 - cpu0) / max(r["requests"], 1)
    s = summarise(load(raw))
    subprocess.run(["gzip", "-f", raw], check=True)  # raw stacks are kept, compressed
    print(
        f"{name:18} {query:9} {r['rps']:7.1f} req/s  server CPU {cpu_ms:7.2f} ms/request  "
        f"wall {1000 / max(r['rps'], 1e-9):7.2f} ms/request  samples {s['total']}",
        flush=True,
    )
    return {"rps": r["rps"], "cpu_ms": cpu_ms, "summary": s}


def table(
    results: dict[tuple[str, str], dict], names: list[str], query: str, conns: int
) -> list[str]:
    cols = [n for n in names if (n, query) in results]
    lines = [
        f"### {query}: server CPU per request, by component (ms)",
        "",
        "| component | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    per: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for n in cols:
        res = results[(n, query)]
        s = res["summary"]
        for comp, k in s["components"].items():
            per[comp][n] = res["cpu_ms"] * k / max(s["total"], 1)
    order = sorted(per, key=lambda c: -max(per[c].values()))
    for comp in order:
        lines.append(f"| {comp} | " + " | ".join(f"{per[comp].get(n, 0):.2f}" for n in cols) + " |")
    lines.append(
        "| **total server CPU ms/request** | "
        + " | ".join(f"**{results[(n, query)]['cpu_ms']:.2f}**" for n in cols)
        + " |"
    )
    lines.append(
        f"| wall ms/request at -c{conns} (1 / req/s) | "
        + " | ".join(f"{1000 / max(results[(n, query)]['rps'], 1e-9):.2f}" for n in cols)
        + " |"
    )
    lines += [
        "",
        "Inclusive (a function and what it calls), ms/request:",
        "",
        "| function | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for label, _ in NAMED:
        vals = []
        for n in cols:
            res = results[(n, query)]
            s = res["summary"]
            vals.append(res["cpu_ms"] * s["named"][label] / max(s["total"], 1))
        if any(v >= 0.01 for v in vals):
            lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    for pick in cols:
        if not pick.startswith("depot"):
            continue
        lines += ["", f"Top self frames of {pick}, share of its samples:", ""]
        s = results[(pick, query)]["summary"]
        for frame, k in s["self"].most_common(15):
            lines.append(f"* {100 * k / max(s['total'], 1):.1f}% `{frame}`")
    lines.append("")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only")
    ap.add_argument("--queries", default=",".join(QUERIES))
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--wrk-cpu", default="1")
    ap.add_argument("--out", default=os.path.join(BENCH, "results", "profile"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    cs = select(load_contenders(), a.only)
    names = [n for n, _ in cs]
    results = {}
    for q in [q for q in a.queries.split(",") if q]:
        for name, url in cs:
            results[(name, q)] = profile_one(name, url, q, a)
    lines = [
        "Server CPU per request by component, from py-spy (`--gil`: only the thread running "
        f"Python) at {a.rate} Hz under wrk -t1 -c{a.connections} for {a.duration}s per "
        "contender and query, scaled by the server's measured CPU time per request (/proc "
        "utime+stime). Cost centres (" + ", ".join(n for n, _ in SCOPES) + ") take a sample if "
        "any frame is theirs; other samples go to the innermost library layer.",
        "",
    ]
    for q in [q for q in a.queries.split(",") if q]:
        lines += table(results, names, q, a.connections)
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
