"""Read a BENCH_TRACE=1 run: where each no-op job's mutation-to-client time goes.

    python -m bench.realtime.trace_report RUN_DIR/trace OUT/jobs.json [--kind noop]

Joins the server's and the worker's marks (trace.py) with the client's own times per job
(jobs.json "rows": t0 = request sent, http = response, seen = final event received) and prints,
per step, the p50 and p99 of its offset from t0 and of the gap from the step before, then the
slowest jobs with the collections (gc) and slow statements that fell inside them.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

# The steps of one job, in path order: (label, mark, the step its gap is measured from: the
# first of `a|b` that the job has).
STEPS = [
    ("view.start (server)", "view.start", "t0"),
    ("  admitted", "admit.end", "view.start"),
    ("  permission", "perm.end", "admit.end"),
    ("view: job row + job.queued committed", "dispatch.start", "perm.end|view.start"),
    ("  kombu LPUSH starts (server)", "put.start", "dispatch.start"),
    ("  kombu LPUSH done (server)", "put.end", "put.start"),
    ("broker send done (server)", "dispatch.end", "put.end"),
    ("view.end (server)", "view.end", "dispatch.end"),
    ("client has HTTP response", "http", "view.end"),
    ("worker parent: BRPOP reply read", "brpop.read", "put.end"),
    ("worker parent: unacked bookkeeping done", "qos.end", "brpop.read"),
    # Without kombu's ack emulation (Depot's setting since session 9) there is no unacked
    # bookkeeping: task_received then follows the BRPOP reply.
    ("worker parent: task_received", "task.received", "qos.end|brpop.read"),
    ("worker task.prerun (child)", "task.prerun", "task.received"),
    ("claim.start", "claim.start", "task.prerun"),
    ("claim.end (job.started committed)", "claim.end", "claim.start"),
    # A held run (since session 11) takes the row's lock instead; job.started commits at the end.
    ("hold.start", "hold.start", "task.prerun"),
    ("hold.end (the row locked)", "hold.end", "hold.start"),
    ("handler", "handler", "claim.end|hold.end"),
    ("finish.start", "finish.start", "handler"),
    ("finish.end (job.succeeded committed)", "finish.end", "finish.start"),
    ("worker publish.submit (job.succeeded)", "publish.succeeded.submit", "finish.end"),
    ("worker publish.start (job.succeeded)", "publish.succeeded.start", "publish.succeeded.submit"),
    ("worker publish.end (job.succeeded)", "publish.succeeded.end", "publish.succeeded.start"),
    ("server ws.dispatch job.succeeded", "ws.succeeded", "publish.succeeded.start"),
    ("client has job.succeeded", "seen", "ws.succeeded"),
]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(q / 100 * (len(values) - 1))))
    return values[k]


def load(trace_dir: Path) -> list[dict[str, Any]]:
    marks = []
    for file in trace_dir.glob("*.jsonl"):
        for line in file.read_text().splitlines():
            try:
                marks.append(json.loads(line))
            except ValueError:
                continue
    marks.sort(key=lambda m: m["t"])
    return marks


def per_job(marks: list[dict[str, Any]]) -> tuple[dict[int, dict[str, float]], dict[int, list]]:
    """First time of each step per job pk, and every mark attributed to the job."""
    at: dict[int, dict[str, float]] = defaultdict(dict)
    attributed: dict[int, list[dict[str, Any]]] = defaultdict(list)
    pending_view: dict[int, list[dict[str, Any]]] = defaultdict(list)  # pid -> view marks
    publish_open: dict[int, str] = {}  # pid -> step label of the open publish
    for m in marks:
        name, job, pid = m["m"], m.get("j"), m["p"]
        if job == "view":
            pending_view[pid].append(m)
            continue
        if name == "view.end" and isinstance(job, int):
            for v in pending_view.pop(pid, []):
                if v["m"] in ("view.start", "admit.end", "perm.end"):
                    at[job].setdefault(v["m"], v["t"])
                attributed[job].append(v)
        if name == "publish.submit":
            if "job.succeeded" in (m.get("types") or []) and isinstance(job, int):
                at[job].setdefault("publish.succeeded.submit", m["t"])
        elif name == "publish.start":
            types = m.get("types") or []
            if "job.succeeded" in types and isinstance(job, int):
                at[job].setdefault("publish.succeeded.start", m["t"])
                publish_open[pid] = job
        elif name == "publish.end" and publish_open.get(pid) is not None:
            at[publish_open.pop(pid)].setdefault("publish.succeeded.end", m["t"])
        elif name == "ws.dispatch" and m.get("e") == "job.succeeded" and isinstance(job, int):
            at[job].setdefault("ws.succeeded", m["t"])
        elif isinstance(job, int):
            at[job].setdefault(name, m["t"])
        if isinstance(job, int):
            attributed[job].append(m)
    return at, attributed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("trace_dir")
    ap.add_argument("jobs_json")
    ap.add_argument("--kind", default="noop")
    ap.add_argument("--slowest", type=int, default=5)
    a = ap.parse_args()
    marks = load(Path(a.trace_dir))
    rows = json.loads(Path(a.jobs_json).read_text())[a.kind]["rows"]
    at, attributed = per_job(marks)
    for r in rows:
        at[r["pk"]].update(t0=r["t0"], http=r["http"], seen=r["seen"])
    jobs = [r["pk"] for r in rows]
    loop = [(at[j]["seen"] - at[j]["t0"]) * 1e3 for j in jobs]
    print(f"{len(jobs)} jobs; loop p50 {pct(loop, 50):.2f} ms, p99 {pct(loop, 99):.2f} ms")
    header = "step (gap: from the step it names)"
    print(f"{header:44} {'at p50':>7} {'at p99':>7} {'gap p50':>8} {'gap p99':>8}  n")
    for label, key, previous_of in STEPS:
        offsets = [(at[j][key] - at[j]["t0"]) * 1e3 for j in jobs if key in at[j]]
        gaps = []
        for j in jobs:
            previous = next((p for p in previous_of.split("|") if p in at[j]), None)
            if key in at[j] and previous is not None:
                gaps.append((at[j][key] - at[j][previous]) * 1e3)
        if not offsets:
            continue
        print(
            f"{label:44} {pct(offsets, 50):7.2f} {pct(offsets, 99):7.2f} "
            f"{pct(gaps, 50):8.2f} {pct(gaps, 99):8.2f}  {len(offsets)}"
        )
    # SQL per step, by statement prefix.
    sql: dict[str, list[float]] = defaultdict(list)
    for j in jobs:
        for m in attributed[j]:
            if m["m"] == "sql":
                sql[m["q"][:48]].append(m["ms"])
    print("\nSQL statements on the job's path (all processes), ms:")
    for q, ms in sorted(sql.items(), key=lambda kv: -statistics.median(kv[1]) * len(kv[1])):
        print(f"  n={len(ms):4} p50 {pct(ms, 50):6.2f} p99 {pct(ms, 99):6.2f}  {q}")
    # Collections inside each job's window.
    gcs = [m for m in marks if m["m"] == "gc"]
    inside = defaultdict(list)
    for j in jobs:
        t0, t1 = at[j]["t0"], at[j]["seen"]
        inside[j] = [g for g in gcs if t0 <= g["t"] <= t1]
    with_gc = [j for j in jobs if inside[j]]
    print(
        f"\ncollections > 1 ms inside a job's window: {len(with_gc)} of {len(jobs)} jobs; "
        f"loop p50 with {pct([loop[jobs.index(j)] for j in with_gc], 50):.1f} ms"
    )
    print(f"\nslowest {a.slowest}:")
    for j in sorted(jobs, key=lambda j: -(at[j]["seen"] - at[j]["t0"]))[: a.slowest]:
        t0 = at[j]["t0"]
        steps = " ".join(
            f"{key}={(at[j][key] - t0) * 1e3:.1f}" for _, key, _ in STEPS if key in at[j]
        )
        extra = " ".join(
            f"gc(p{g['p']},g{g['gen']},{g['ms']:.1f}ms@{(g['t'] - t0) * 1e3:.1f})"
            for g in inside[j]
        )
        print(f"  job {j}: {(at[j]['seen'] - t0) * 1e3:.1f} ms: {steps} {extra}")


if __name__ == "__main__":
    main()
