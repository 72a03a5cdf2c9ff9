"""The realtime bench's driver and clients (one asyncio/uvloop process, pinned to the client CPU).

    python -m bench.realtime.clients --base ws://127.0.0.1:8301 --server-pid PID \
        --seed .run/seed.json --out results --phases fanout,resume [--clients 1,100,1000]
    ... --phases jobs --jobs 200          (needs a Celery worker)
    ... --phases report                   (writes results/realtime.md from the JSON files)

Contenders (both served by the same uvicorn process, see asgi.py):
  depot  graphql-transport-ws at /graphql/, connectionParams {"authToken": ...},
         subscription { events(workspaceId: ...) { sequence payload } }
  bare   a bare Channels JSON consumer at /bench/bare/?workspace=<pk> on the same group

Events come from producer.py (a separate process; Depot's events.record + realtime.publish).
Latency = client receive time - the producer's COMMIT time of that event (same host clock).
Server CPU = utime+stime of the uvicorn process from /proc/<pid>/stat, per delivered message.
Every subscriber's stream is checked: every sequence of the phase exactly once, in order.
All waits are bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import itertools
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import connect

from bench.realtime import report

DEPOT_SUB = (
    "subscription Events($w: ID!, $a: Int) { events(workspaceId: $w, after: $a) "
    "{ sequence payload } }"
)
JOB_SUB = "subscription Jobs($w: ID!) { events(workspaceId: $w) { sequence type payload } }"
DELETE_MUTATION = (
    "mutation Delete($id: ID!) { collectionDelete(input: {id: $id}) "
    "{ job { id } errors { code message } } }"
)
WS_OPTIONS: dict[str, Any] = {
    "compression": None,
    "ping_interval": None,
    "open_timeout": 60,
    "close_timeout": 2,
    "max_queue": None,
    "max_size": None,
}


# --- measuring ---------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def proc_cpu(pid: int) -> float:
    """utime+stime seconds of a process, all its threads included."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def server_gc(base: str, objects: bool = False) -> dict[str, Any] | None:
    """The server's cumulative GC time and collections (bench-only /bench/gc/)."""
    host, port = base.split("//", 1)[1].split(":")
    try:
        reader, writer = await asyncio.open_connection(host, int(port))
        path = "/bench/gc/?objects=1" if objects else "/bench/gc/"
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return json.loads(data.split(b"\r\n\r\n", 1)[1])
    except Exception:
        return None


def gc_delta(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any] | None:
    if not before or not after:
        return None
    return {
        "seconds": after["seconds"] - before["seconds"],
        "seconds_by_generation": [
            a - b
            for a, b in zip(
                after["seconds_by_generation"], before["seconds_by_generation"], strict=True
            )
        ],
        "collections": [
            a - b for a, b in zip(after["collections"], before["collections"], strict=True)
        ],
    }


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class ServerLog:
    """Counts what the server logged during a case (errors there explain losses)."""

    PATTERNS = ("Exception in ASGI application", "MaxConnectionsError", "TimeoutError", "Traceback")

    def __init__(self, path: str) -> None:
        self.path = Path(path) if path else None
        self.offset = self._size()

    def _size(self) -> int:
        return self.path.stat().st_size if self.path and self.path.exists() else 0

    def since_last(self) -> dict[str, int]:
        if not self.path:
            return {}
        size = self._size()
        with self.path.open("rb") as f:
            f.seek(self.offset)
            text = f.read(max(0, size - self.offset)).decode(errors="replace")
        self.offset = size
        counts = {p: text.count(p) for p in self.PATTERNS}
        return {k: v for k, v in counts.items() if v}


class Tally:
    """Deliveries across all subscribers, for bounded waits."""

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0

    async def wait(self, target: int, *, cap: float, idle: float) -> bool:
        end = time.time() + cap
        while self.count < target and time.time() < end:
            if self.last and time.time() - self.last > idle:
                break
            await asyncio.sleep(0.005)
        return self.count >= target


# --- subscribers -------------------------------------------------------------------------------


class Subscriber:
    def __init__(self, kind: str, cid: int, tally: Tally) -> None:
        self.kind, self.cid, self.tally = kind, cid, tally
        self.received: list[tuple[int, float]] = []  # (sequence, receive time)
        self.errors: list[Any] = []
        self.on_event: Any = None  # optional callback(event dict, receive time)
        self.ws: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.close_code: int | None = None

    async def open(
        self, base: str, workspace: dict[str, Any], *, after: int | None = None, query: str = ""
    ) -> None:
        if self.kind == "bare":
            self.ws = await connect(f"{base}/bench/bare/?workspace={workspace['pk']}", **WS_OPTIONS)
        else:
            self.ws = await connect(
                f"{base}/graphql/", subprotocols=["graphql-transport-ws"], **WS_OPTIONS
            )
            init = {"type": "connection_init", "payload": {"authToken": workspace["token"]}}
            await self.ws.send(json.dumps(init))
            ack = json.loads(await asyncio.wait_for(self.ws.recv(), 60))
            if ack.get("type") != "connection_ack":
                raise RuntimeError(f"no connection_ack: {ack}")
            variables: dict[str, Any] = {"w": workspace["gid"]}
            if after is not None:
                variables["a"] = after
            subscribe = {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": query or DEPOT_SUB, "variables": variables},
            }
            await self.ws.send(json.dumps(subscribe))
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        received, tally, depot = self.received, self.tally, self.kind == "depot"
        try:
            async for raw in self.ws:
                t = time.time()
                data = json.loads(raw)
                if depot:
                    kind = data.get("type")
                    if kind != "next":
                        if kind == "ping":
                            await self.ws.send('{"type":"pong"}')
                        else:
                            self.errors.append(data)
                        continue
                    payload = data["payload"]
                    if payload.get("errors"):
                        self.errors.append(payload["errors"])
                        continue
                    data = payload["data"]["events"]
                received.append((data["sequence"], t))
                tally.count += 1
                tally.last = t
                if self.on_event is not None:
                    self.on_event(data, t)
        except websockets.ConnectionClosed as closed:
            self.close_code = closed.rcvd.code if closed.rcvd else None
        except Exception as error:
            self.errors.append(repr(error))

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):  # already closed, or the server went away
                await asyncio.wait_for(self.ws.close(), 5)
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader


async def open_many(
    base: str, kind: str, workspace: dict[str, Any], n: int, tally: Tally
) -> list[Subscriber]:
    subs = [Subscriber(kind, i, tally) for i in range(n)]
    gate = asyncio.Semaphore(50)

    async def one(sub: Subscriber) -> None:
        async with gate:
            await sub.open(base, workspace)

    await asyncio.gather(*(one(s) for s in subs))
    return subs


async def close_many(subs: list[Subscriber]) -> None:
    gate = asyncio.Semaphore(100)

    async def one(sub: Subscriber) -> None:
        async with gate:
            await sub.close()

    await asyncio.gather(*(one(s) for s in subs))


# --- the producer process --------------------------------------------------------------------


class Producer:
    def __init__(self, any_cpu: bool = False) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.lock = asyncio.Lock()
        self.any_cpu = any_cpu

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.realtime.producer",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        if self.any_cpu:
            # The resume's producers commit while nothing is measured on the server's CPU: let
            # them use both cores (pinned with the clients, four of them cannot reach 100/s).
            os.sched_setaffinity(self.proc.pid, range(os.cpu_count() or 1))

    async def call(self, wait_s: float = 120, **command: Any) -> dict[str, Any]:
        assert self.proc is not None
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        async with self.lock:
            self.proc.stdin.write((json.dumps(command) + "\n").encode())
            await self.proc.stdin.drain()
            line = await asyncio.wait_for(self.proc.stdout.readline(), wait_s)
        if not line:
            raise RuntimeError("the producer exited")
        return json.loads(line)

    async def emit(self, ws: int, count: int, interval: float, type_: str) -> dict[str, Any]:
        return await self.call(cmd="emit", ws=ws, count=count, interval=interval, type=type_)

    async def stop(self) -> None:
        if self.proc is None:
            return
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b'{"cmd": "quit"}\n')
            await self.proc.stdin.drain()
            await asyncio.wait_for(self.proc.wait(), 10)
        except Exception:
            self.proc.kill()
            await self.proc.wait()


# --- fan-out: latency, rate, CPU, loss ---------------------------------------------------------


def check_streams(
    subs: list[Subscriber], starts: list[int], expected: list[int], whole: bool = False
) -> dict[str, int]:
    """Every subscriber must get each expected sequence exactly once, in increasing order
    (whole: also check everything it received since it connected, warm-up events included)."""
    wanted = set(expected)
    lost = dup = disorder = 0
    for sub, start in zip(subs, starts, strict=True):
        seqs = [s for s, _ in sub.received[start:] if s in wanted]
        got = set(seqs)
        lost += len(wanted - got)
        dup += len(seqs) - len(got)
        disorder += sum(1 for a, b in itertools.pairwise(seqs) if b <= a)
        if whole:
            everything = [s for s, _ in sub.received]
            disorder += sum(1 for a, b in itertools.pairwise(everything) if b <= a)
    return {"lost": lost, "duplicated": dup, "out_of_order": disorder}


async def warm_up(
    a: argparse.Namespace,
    producer: Producer,
    subs: list[Subscriber],
    workspace: dict[str, Any],
) -> dict[str, Any]:
    """Subscriptions join the group asynchronously: emit until every subscriber heard one.

    A subscriber still deaf after 10 tries is reconnected (counted in the result: on a quiet
    machine this never happens; on a saturated one it did, once, for a lone first subscriber).
    """
    t0 = time.time()
    reopened = 0
    for attempt in range(40):
        await producer.emit(workspace["pk"], 1, 0, "bench.warm")
        end = time.time() + 1.5
        while time.time() < end and not all(s.received for s in subs):  # noqa: ASYNC110 (bounded poll)
            await asyncio.sleep(0.01)
        if all(s.received for s in subs):
            return {"attempts": attempt + 1, "seconds": time.time() - t0, "reopened": reopened}
        if attempt in (9, 19, 29):
            for sub in [s for s in subs if not s.received]:
                await sub.close()
                sub.reader = None
                await sub.open(a.base, workspace)
                reopened += 1
    deaf = [s for s in subs if not s.received]
    detail = [
        (s.kind, s.close_code, s.errors[:2], s.reader.done() if s.reader else None)
        for s in deaf[:3]
    ]
    raise RuntimeError(
        f"{len(deaf)}/{len(subs)} subscribers never heard the warm-up event: {detail}"
    )


async def phase(
    a: argparse.Namespace,
    producer: Producer,
    subs: list[Subscriber],
    workspace: dict[str, Any],
    tally: Tally,
    count: int,
    *,
    paced: bool,
    idle_ms_per_s: float = 0.0,
    profile: str = "",
) -> dict[str, Any]:
    """paced: one event at a time, the next one 20 ms after every subscriber has the previous
    one (so latency is one fan-out, not a backlog, however loaded the box); else back to back.
    """
    n = len(subs)
    starts = [len(s.received) for s in subs]
    target = tally.count + count * n
    spy = start_py_spy(a, profile) if profile else None
    if spy:
        await asyncio.sleep(1.0)  # let py-spy attach before the burst
    gc0 = await server_gc(a.base)
    tally.last = time.time()
    cpu0, cli0, t0 = proc_cpu(a.server_pid), self_cpu(), time.time()
    if paced:
        sent: dict[str, list[Any]] = {"seqs": [], "t_start": [], "t_commit": [], "t_published": []}
        for i in range(count):
            one = await producer.emit(workspace["pk"], 1, 0, "bench.tick")
            for key in sent:
                sent[key] += one[key]
            await tally.wait(target - (count - i - 1) * n, cap=30, idle=10)
            await asyncio.sleep(a.paced_gap)
        complete = tally.count >= target
    else:
        sent = await producer.emit(workspace["pk"], count, 0, "bench.tick")
        complete = await tally.wait(target, cap=60 + count * n / 500, idle=5)
    cpu = proc_cpu(a.server_pid) - cpu0
    elapsed = time.time() - t0
    client_cpu = self_cpu() - cli0
    gc_used = gc_delta(gc0, await server_gc(a.base))
    profiled = await stop_py_spy(spy) if spy else None
    commit = dict(zip(sent["seqs"], sent["t_commit"], strict=True))
    latencies: list[float] = []
    last_per_event: dict[int, float] = {}
    deliveries = 0
    last_receive = 0.0
    for sub, start in zip(subs, starts, strict=True):
        for seq, t in sub.received[start:]:
            if seq in commit:
                deliveries += 1
                latency = t - commit[seq]
                latencies.append(latency)
                last_per_event[seq] = max(last_per_event.get(seq, 0.0), latency)
                last_receive = max(last_receive, t)
    span = last_receive - sent["t_start"][0] if deliveries else float("nan")
    publish = [p - c for c, p in zip(sent["t_commit"], sent["t_published"], strict=True)]
    produced_span = sent["t_published"][-1] - sent["t_start"][0]
    net_cpu = cpu - idle_ms_per_s / 1e3 * elapsed
    return {
        "events": count,
        "paced": paced,
        "expected": count * n,
        "deliveries": deliveries,
        "complete": complete,
        "p50_ms": (pct(latencies, 50) or 0) * 1e3,
        "p99_ms": (pct(latencies, 99) or 0) * 1e3,
        "max_ms": max(latencies, default=0) * 1e3,
        "last_client_p50_ms": statistics.median(last_per_event.values()) * 1e3
        if last_per_event
        else None,
        "span_s": span,
        "deliveries_per_s": deliveries / span if deliveries else 0.0,
        "events_per_s_delivered": deliveries / n / span if deliveries else 0.0,
        "producer_events_per_s": count / produced_span if produced_span > 0 else None,
        "commit_to_published_p50_ms": statistics.median(publish) * 1e3,
        "elapsed_s": elapsed,
        "server_cpu_s": cpu,
        "server_cpu_us_per_delivery": cpu / deliveries * 1e6 if deliveries else None,
        "server_cpu_net_of_idle_us_per_delivery": net_cpu / deliveries * 1e6
        if deliveries
        else None,
        "client_cpu_s": client_cpu,
        "server_gc": gc_used,
        "server_gc_share_of_cpu": gc_used["seconds"] / cpu if gc_used and cpu > 0 else None,
        "checks": check_streams(subs, starts, sent["seqs"], whole=not paced),
        "profile": profiled,
    }


def start_py_spy(a: argparse.Namespace, name: str) -> dict[str, Any]:
    """py-spy --nonblocking samples from this (client) CPU without stopping the server."""
    raw = Path(a.out) / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    out = raw / f"profile-{name}.txt"
    proc = subprocess.Popen(
        [
            a.py_spy,
            "record",
            "--pid",
            str(a.server_pid),
            "--rate",
            "250",
            "--nonblocking",
            "--format",
            "raw",
            "--nolineno",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return {"proc": proc, "file": out, "name": name}


async def stop_py_spy(spy: dict[str, Any]) -> dict[str, Any]:
    proc = spy["proc"]
    proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    try:
        _, err = await asyncio.wait_for(asyncio.to_thread(proc.communicate), 30)
    except TimeoutError:
        proc.kill()
        _, err = await asyncio.to_thread(proc.communicate)
    return {
        "contender": spy["name"],
        "file": str(spy["file"].relative_to(spy["file"].parent.parent)),
        "py_spy_rc": proc.returncode,
        "py_spy_stderr": (err or b"").decode(errors="replace")[-300:],
    }


async def fanout_case(
    a: argparse.Namespace,
    producer: Producer,
    kind: str,
    n: int,
    workspace: dict[str, Any],
    label: str = "",
) -> dict[str, Any]:
    tally = Tally()
    log = ServerLog(a.server_log)
    load = os.getloadavg()[0]
    gc_empty = await server_gc(a.base, objects=True)
    t0 = time.time()
    subs = await open_many(a.base, kind, workspace, n, tally)
    connect_s = time.time() - t0
    try:
        warm = await warm_up(a, producer, subs, workspace)
        await asyncio.sleep(0.5)
        gc_connected = await server_gc(a.base, objects=True)
        objects_per_subscriber = (
            (gc_connected["tracked"] - gc_empty["tracked"]) / n
            if gc_empty and gc_connected
            else None
        )
        cpu0 = proc_cpu(a.server_pid)
        await asyncio.sleep(a.idle_seconds)
        idle_ms_per_s = (proc_cpu(a.server_pid) - cpu0) / a.idle_seconds * 1e3
        lat_events = (
            a.lat_events_1 if n == 1 else (a.lat_events_100 if n <= 100 else a.lat_events_1000)
        )
        paced = await phase(
            a, producer, subs, workspace, tally, lat_events, paced=True, idle_ms_per_s=idle_ms_per_s
        )
        burst_events = max(a.burst_min_events, a.burst_deliveries // n)
        if n == 1:
            burst_events = a.burst_events_1
        profile_name = (label or kind) if a.py_spy and n == max(a.client_counts) else ""
        burst = await phase(
            a,
            producer,
            subs,
            workspace,
            tally,
            burst_events,
            paced=False,
            idle_ms_per_s=idle_ms_per_s,
            profile=profile_name,
        )
        profile = burst.pop("profile")
        if profile:
            profile["burst"] = {"deliveries": burst["deliveries"]}
        recheck = None
        if kind == "depot" and n == max(a.client_counts) and a.recheck:
            recheck = await recheck_storm(a, producer, subs, idle_ms_per_s)
        errors = [e for s in subs for e in s.errors][:5]
        closed_early = sum(1 for s in subs if s.reader is not None and s.reader.done())
    finally:
        await close_many(subs)
    await asyncio.sleep(1.0)
    return {
        "server_log": log.since_last(),
        "contender": kind,
        "clients": n,
        "connect_s": connect_s,
        "warm_up": warm,
        "load1_at_start": load,
        "gc_tracked_objects_per_subscriber": objects_per_subscriber,
        "idle_server_cpu_ms_per_s": idle_ms_per_s,
        "paced": paced,
        "burst": burst,
        "lost": paced["checks"]["lost"] + burst["checks"]["lost"],
        "duplicated": paced["checks"]["duplicated"] + burst["checks"]["duplicated"],
        "out_of_order": paced["checks"]["out_of_order"] + burst["checks"]["out_of_order"],
        "closed_early": closed_early,
        "errors": errors,
        "profile": profile,
        "recheck": recheck,
    }


async def recheck_storm(
    a: argparse.Namespace, producer: Producer, subs: list[Subscriber], idle_ms_per_s: float
) -> dict[str, Any]:
    """Depot's credentials nudge to the bench user: every one of its sockets runs _recheck()
    (token, user and memberships read again) at once. CPU until the server settles, per socket."""
    await asyncio.sleep(0.5)
    cpu0, t0 = proc_cpu(a.server_pid), time.time()
    await producer.call(cmd="nudge")
    last, quiet = cpu0, 0
    while time.time() - t0 < 60 and quiet < 3:
        await asyncio.sleep(0.2)
        now = proc_cpu(a.server_pid)
        quiet = quiet + 1 if now - last <= 0.01 else 0
        last = now
    elapsed = time.time() - t0 - 0.6  # the three quiet polls
    cpu = last - cpu0 - idle_ms_per_s / 1e3 * max(0.0, elapsed)
    n = len(subs)
    closed = sum(1 for s in subs if s.reader is not None and s.reader.done())
    return {
        "sockets": n,
        "seconds": elapsed,
        "server_cpu_s": cpu,
        "us_per_socket": cpu / n * 1e6,
        "steady_ms_per_s_at_30s": cpu / n * 1e3 * n / 30,
        "closed": closed,
    }


async def run_whatif(a: argparse.Namespace, workspaces: list[dict[str, Any]]) -> dict[str, Any]:
    """Both contenders again at the largest N, with the server's GC put back to CPython's
    defaults in place (gc.unfreeze(); gc.set_threshold(700, 10, 10) via /bench/gc/?tune=0):
    what project/asgi.py's collector tuning is worth."""
    host, port = a.base.split("//", 1)[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"GET /bench/gc/?tune=0 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()
    tuned = json.loads((await asyncio.wait_for(reader.read(), 30)).split(b"\r\n\r\n", 1)[1])
    writer.close()
    producer = Producer()
    await producer.start()
    cases = []
    try:
        n = max(a.client_counts)
        for i, kind in enumerate(["bare", "depot"]):
            a.recheck = False
            case = await fanout_case(a, producer, kind, n, workspaces[i], label=f"{kind}-gcdefault")
            cases.append(case)
            print("what-if:", report.case_line(case), flush=True)
    finally:
        await producer.stop()
    return {"gc": {"threshold": tuned["threshold"], "frozen": tuned["frozen"]}, "cases": cases}


async def run_fanout(a: argparse.Namespace, workspaces: list[dict[str, Any]]) -> dict[str, Any]:
    producer = Producer()
    await producer.start()
    cases = []
    try:
        slot = 0
        for round_, n in enumerate(a.client_counts):
            # Alternate which contender goes first, so drift on the shared box hits both.
            order = ["bare", "depot"] if round_ % 2 == 0 else ["depot", "bare"]
            for kind in order:
                case = await fanout_case(a, producer, kind, n, workspaces[slot])
                slot += 1
                cases.append(case)
                print(report.case_line(case), flush=True)
    finally:
        await producer.stop()
    return {"cases": cases}


# --- resume --------------------------------------------------------------------------------------


async def run_resume(a: argparse.Namespace, workspace: dict[str, Any]) -> dict[str, Any]:
    """Disconnect one Depot subscriber while 1,000 events are committed at 100/s, then resume
    with `after`: it must get all 1,000, in order, once; then a live tail right after."""
    producers = [Producer(any_cpu=True) for _ in range(a.resume_producers)]
    for p in producers:
        await p.start()
    for p in producers:  # each has Django set up before the 100/s schedule starts
        await p.call(cmd="ping")
    tally = Tally()
    sub = Subscriber("depot", 0, tally)
    try:
        await sub.open(a.base, workspace)
        await warm_up(a, producers[0], [sub], workspace)
        live = await producers[0].emit(workspace["pk"], 20, 0.02, "bench.tick")
        await tally.wait(tally.count + 20, cap=10, idle=3)
        last = sub.received[-1][0]
        live_ok = [s for s, _ in sub.received][-20:] == live["seqs"]
        await sub.close()
        t_disconnected = time.time()

        # 1,000 events at 100/s. One producer commits only ~50-80 events/s on this box (each
        # event is a transaction plus Depot's publish), so K producers interleave, each at 100/K
        # per s (like K Celery workers of one workspace).
        k = len(producers)
        sizes = [a.resume_events // k + (1 if i < a.resume_events % k else 0) for i in range(k)]
        gap = 1.0 / a.resume_rate

        async def part(i: int, p: Producer) -> dict[str, Any]:
            await asyncio.sleep(i * gap)
            return await p.emit(workspace["pk"], sizes[i], gap * k, "bench.offline")

        parts = await asyncio.gather(*(part(i, p) for i, p in enumerate(producers)))
        offline = sorted(s for r in parts for s in r["seqs"])
        first_start = min(r["t_start"][0] for r in parts)
        last_commit = max(r["t_commit"][-1] for r in parts)
        rate = len(offline) / (last_commit - first_start)
        wait = a.resume_disconnect_s - (time.time() - t_disconnected)
        if wait > 0:
            await asyncio.sleep(wait)
        disconnected_s = time.time() - t_disconnected

        # Resume, and commit a live tail at once, so replay and live overlap at the switch.
        tally2 = Tally()
        resumed = Subscriber("depot", 1, tally2)
        t_resume = tally2.last = time.time()
        await resumed.open(a.base, workspace, after=last)
        tail = await producers[0].emit(workspace["pk"], a.resume_tail, 0.02, "bench.tail")
        await tally2.wait(len(offline) + a.resume_tail, cap=60, idle=5)
        seqs = [s for s, _ in resumed.received]
        replayed = [s for s in seqs if s in set(offline)]
        replay_done = (
            resumed.received[len(offline) - 1][1] - t_resume
            if len(resumed.received) >= len(offline)
            else None
        )
        expected_all = offline + tail["seqs"]
        result = {
            "events_offline": len(offline),
            "offline_commit_rate_per_s": rate,
            "producers": k,
            "disconnected_s": disconnected_s,
            "cursor": last,
            "live_before_ok": live_ok,
            "received_of_offline": len(set(replayed)),
            "offline_in_order_once": replayed == offline,
            "first_1000_are_the_offline_events": seqs[: len(offline)] == offline,
            "replay_received_in_s": replay_done,
            "tail_events": a.resume_tail,
            "received_total": len(seqs),
            "all_in_order_once": seqs == expected_all,
            "contiguous": seqs == list(range(last + 1, last + 1 + len(expected_all))),
            "errors": resumed.errors[:3],
        }
        await resumed.close()
    finally:
        for p in producers:
            await p.stop()
    print(report.resume_line(result), flush=True)
    return result


# --- mutation to client (Celery) -----------------------------------------------------------------

RETRY_MUTATION = (
    "mutation Retry($id: ID!) { jobRetry(id: $id) { job { id } errors { code message } } }"
)


class KeptHTTP:
    """HTTP/1.1 POSTs of JSON over one kept connection: the least a client can do per request.

    Against a trivial local server on this box, an httpx.AsyncClient POST took 1.26 ms and this
    0.10 ms (p50 of 1,000 alternating calls): httpx's millisecond lands inside every loop timed
    from the client's send. The anchors' loop wrote its request to a raw socket too. Every loop
    here (Depot's and the floor's) goes through this one client.
    """

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        host_port = base.split("//", 1)[1]
        self.host, port = host_port.split(":")
        self.port = int(port)
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n{self.extra}\r\n"
        )
        self.writer.write(head.encode() + data)
        status_line, *header_lines = (
            (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        )
        length = next(
            int(line.split(":", 1)[1])
            for line in header_lines
            if line.lower().startswith("content-length:")
        )
        payload = await self.reader.readexactly(length)
        return int(status_line.split(" ")[1]), json.loads(payload)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()


def _gid_pk(gid: str) -> int:
    return int(base64.b64decode(gid).decode().split(":")[1])


async def run_jobs(
    a: argparse.Namespace, workspace: dict[str, Any], floor_workspace: dict[str, Any]
) -> dict[str, Any]:
    """Depot's no-op job, started by the bench's view and by a real GraphQL mutation (jobRetry),
    interleaved with the floor (bench/realtime/floor.py); then collectionDelete."""
    producer = Producer()
    await producer.start()
    tally = Tally()
    sub = Subscriber("depot", 0, tally)
    floor_sub = Subscriber("bare", 1, Tally())
    succeeded: dict[str, float] = {}
    waiting: dict[str, asyncio.Future[float]] = {}

    def arrived(key: str, t: float) -> None:
        succeeded[key] = t
        future = waiting.pop(key, None)
        if future is not None and not future.done():
            future.set_result(t)

    def on_event(event: dict[str, Any], t: float) -> None:
        # The job's final event (job.succeeded, or job.failed / job.cancelled if it broke).
        if event.get("type") in ("job.succeeded", "job.failed", "job.cancelled"):
            arrived(event["payload"]["jobId"], t)

    def on_floor(event: dict[str, Any], t: float) -> None:
        arrived(event["payload"]["floor"], t)

    sub.on_event = on_event
    floor_sub.on_event = on_floor
    http_base = a.base.replace("ws://", "http://")
    http = KeptHTTP(http_base, {"Authorization": f"Bearer {workspace['token']}"})
    out: dict[str, Any] = {}
    try:
        out["publish_cost"] = await producer.call(cmd="publish_cost", count=50)
        print("publish cost (ms):", json.dumps(out["publish_cost"]), flush=True)
        await sub.open(a.base, workspace, query=JOB_SUB)
        await floor_sub.open(a.base, floor_workspace)

        async def seen(key: str, wait_s: float) -> float:
            if key in succeeded:
                return succeeded[key]
            future = asyncio.get_running_loop().create_future()
            waiting[key] = future
            try:
                return await asyncio.wait_for(future, wait_s)
            finally:
                waiting.pop(key, None)

        async def noop(wait_s: float) -> dict[str, Any]:
            t0 = time.time()
            status, body = await http.post("/bench/noop/", {"workspace": workspace["pk"]})
            t_http = time.time()
            if status != 200:
                raise RuntimeError(f"/bench/noop/ answered {status}: {body}")
            t_seen = await seen(body["jobId"], wait_s)
            return {"pk": body["pk"], "t0": t0, "http": t_http, "seen": t_seen}

        async def floor(wait_s: float) -> dict[str, Any]:
            token = uuid.uuid4().hex
            t0 = time.time()
            status, body = await http.post(
                "/bench/floor/", {"workspace": floor_workspace["pk"], "token": token}
            )
            t_http = time.time()
            if status != 200:
                raise RuntimeError(f"/bench/floor/ answered {status}: {body}")
            t_seen = await seen(token, wait_s)
            return {"t0": t0, "http": t_http, "seen": t_seen}

        async def mutation(query: str, field: str, gid: str, wait_s: float) -> dict[str, Any]:
            t0 = time.time()
            status, body = await http.post("/graphql/", {"query": query, "variables": {"id": gid}})
            t_http = time.time()
            payload = body["data"][field]
            if status != 200 or payload["errors"]:
                raise RuntimeError(f"{field} answered {status}: {payload['errors']}")
            job = payload["job"]["id"]
            t_seen = await seen(job, wait_s)
            return {"pk": _gid_pk(job), "t0": t0, "http": t_http, "seen": t_seen}

        # The worker starts meanwhile: the first job that comes back says it is up.
        for _ in range(60):
            try:
                await noop(2.0)
                break
            except TimeoutError:
                continue
        else:
            raise RuntimeError("no job.succeeded within 120 s: is the Celery worker up?")
        timeouts = {"noop": 0, "floor": 0, "retry": 0, "collection_delete": 0}

        async def attempt(name: str, start: Any, rows: list[dict[str, Any]]) -> None:
            try:
                rows.append(await start())
            except TimeoutError:
                timeouts[name] += 1
                if timeouts[name] > 10:
                    raise
            await asyncio.sleep(0.02)

        # The real mutation as many times as bench.noop: its p99 is one of the goals.
        retry_count = a.retries if a.retries >= 0 else a.jobs
        delete_count = a.deletes if a.deletes >= 0 else a.jobs // 2
        retried = (
            await producer.call(cmd="cancelled_noops", ws=workspace["pk"], count=retry_count + 5)
        )["ids"]
        collections = (
            await producer.call(cmd="collections", ws=workspace["pk"], count=delete_count + 5)
        )["ids"]
        for gid in retried[:5]:
            await mutation(RETRY_MUTATION, "jobRetry", gid, 10)
        for _ in range(5):
            await noop(10)
            await floor(10)
        noops: list[dict[str, Any]] = []
        floors: list[dict[str, Any]] = []
        retries: list[dict[str, Any]] = []
        to_retry = iter(retried[5:])
        # bench.noop, the floor and jobRetry one after the other, in each of the six orders in
        # turn: each goes first, second and last as often, so all three see the same minutes
        # of a box whose speed drifts, and each job has the floor's run next to it.
        orders = list(itertools.permutations(range(3)))
        for i in range(max(a.jobs, retry_count)):
            gid = next(to_retry, None)
            retry = (
                None
                if gid is None
                else functools.partial(mutation, RETRY_MUTATION, "jobRetry", gid)
            )
            slots = [  # a slot whose start is None has nothing left to run
                ("noop", noop if i < a.jobs else None, noops),
                ("floor", floor if i < a.jobs else None, floors),
                ("retry", retry, retries),
            ]
            for k in orders[i % len(orders)]:
                name, start, rows = slots[k]
                if start is not None:
                    await attempt(name, lambda s=start: s(10), rows)

        for gid in collections[:5]:
            await mutation(DELETE_MUTATION, "collectionDelete", gid, 10)
        deletes: list[dict[str, Any]] = []
        for gid in collections[5:]:
            await attempt(
                "collection_delete",
                lambda g=gid: mutation(DELETE_MUTATION, "collectionDelete", g, 10),
                deletes,
            )
        out["floor"] = _loop_summary(floors, timeouts["floor"])
        print(report.jobs_line("floor", out["floor"]), flush=True)
        for name, rows in (("noop", noops), ("retry", retries), ("collection_delete", deletes)):
            if not rows:
                continue
            times = (await producer.call(cmd="jobtimes", pks=[r["pk"] for r in rows]))["rows"]
            out[name] = _loop_summary(rows, timeouts[name], {row[0]: row for row in times})
            print(report.jobs_line(name, out[name]), flush=True)
        # Per pair: the i-th job of each kind and the floor's i-th ran back to back.
        out["pairs"] = {
            name: {"n": len(diffs), "median_diff_ms": statistics.median(diffs)}
            for name, rows in (("noop", noops), ("retry", retries))
            if (diffs := _minus_floor(rows, floors))
        }
    finally:
        await http.close()
        await sub.close()
        await floor_sub.close()
        await producer.stop()
    return out


def _minus_floor(rows: list[dict[str, Any]], floors: list[dict[str, Any]]) -> list[float]:
    return [
        (r["seen"] - r["t0"] - (f["seen"] - f["t0"])) * 1e3
        for r, f in zip(rows, floors, strict=False)
    ]


def _loop_summary(
    rows: list[dict[str, Any]], timeouts: int, times: dict[int, list[Any]] | None = None
) -> dict[str, Any]:
    """p50/p99/max of each segment: the loop and the HTTP round trip from the client's clock,
    and, for Depot's jobs, the job row's own times (dispatched, started, finished)."""
    segments: dict[str, list[float]] = {"loop_ms": [], "http_ms": []}
    states: dict[str, int] = {}
    for r in rows:
        segments["loop_ms"].append((r["seen"] - r["t0"]) * 1e3)
        segments["http_ms"].append((r["http"] - r["t0"]) * 1e3)
        if times is None:
            continue
        _pk, state, dispatched, started, finished = times[r["pk"]]
        states[state] = states.get(state, 0) + 1
        for key, value in (
            ("queued_to_started_ms", started - dispatched),
            ("started_to_finished_ms", finished - started),
            ("finished_to_seen_ms", r["seen"] - finished),
        ):
            segments.setdefault(key, []).append(value * 1e3)
    return {
        "jobs": len(rows),
        "timeouts": timeouts,
        "states": states,
        # Per job, for trace_report.py (BENCH_TRACE=1): the client's own clock.
        "rows": [{k: r[k] for k in ("pk", "t0", "http", "seen") if k in r} for r in rows],
        **{k: {"p50": pct(v, 50), "p99": pct(v, 99), "max": max(v)} for k, v in segments.items()},
    }


# --- main ----------------------------------------------------------------------------------------


async def amain() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="ws://127.0.0.1:8301")
    ap.add_argument("--server-pid", type=int, required=True)
    ap.add_argument("--seed", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--server-log", default="")
    ap.add_argument("--phases", default="fanout,resume")
    ap.add_argument("--clients", default="1,100,1000")
    ap.add_argument("--idle-seconds", type=float, default=2.0)
    ap.add_argument("--lat-events-1", type=int, default=60)
    ap.add_argument("--lat-events-100", type=int, default=30)
    ap.add_argument("--lat-events-1000", type=int, default=10)
    ap.add_argument("--paced-gap", type=float, default=0.02)
    ap.add_argument("--burst-events-1", type=int, default=300)
    ap.add_argument("--burst-deliveries", type=int, default=5000)
    ap.add_argument("--burst-min-events", type=int, default=10)
    ap.add_argument("--resume-events", type=int, default=1000)
    ap.add_argument("--resume-rate", type=float, default=100.0)
    ap.add_argument("--resume-producers", type=int, default=4)
    ap.add_argument("--resume-disconnect-s", type=float, default=10.0)
    ap.add_argument("--resume-tail", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--py-spy", default="")
    ap.add_argument("--no-recheck", dest="recheck", action="store_false")
    ap.add_argument("--retries", type=int, default=-1, help="jobRetry jobs (default jobs)")
    ap.add_argument(
        "--deletes", type=int, default=-1, help="collectionDelete jobs (default jobs/2)"
    )
    a = ap.parse_args()
    a.client_counts = [int(x) for x in a.clients.split(",") if x]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (start-up, before any socket)
    workspaces = json.loads(Path(a.seed).read_text())["workspaces"]  # noqa: ASYNC240
    phases = [p for p in a.phases.split(",") if p]
    if "fanout" in phases:
        result = await run_fanout(a, workspaces[:8])
        (out / "fanout.json").write_text(json.dumps(result, indent=1))
    if "resume" in phases:
        result = await run_resume(a, workspaces[8])
        (out / "resume.json").write_text(json.dumps(result, indent=1))
    if "jobs" in phases:
        result = await run_jobs(a, workspaces[9], workspaces[12])
        (out / "jobs.json").write_text(json.dumps(result, indent=1))
    if "whatif" in phases:
        result = await run_whatif(a, workspaces[10:12])
        (out / "whatif.json").write_text(json.dumps(result, indent=1))
    if "report" in phases:
        text = report.render(out)
        (out / "realtime.md").write_text(text)
        print(text)


if __name__ == "__main__":
    import uvloop

    uvloop.run(amain())
