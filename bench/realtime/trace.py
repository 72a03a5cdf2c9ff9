"""BENCH_TRACE=1: timestamps along a job's path (server and worker), one JSON line per mark.

Wraps Depot functions in place (bench processes only), writing
{"p": pid, "m": mark, "t": time.time(), "j": job id or null} to $BENCH_RUN_DIR/trace/<pid>.jsonl.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_file: Any = None


def mark(name: str, job: Any = None, at: float | None = None, **extra: Any) -> None:
    global _file
    t = time.time() if at is None else at
    line = json.dumps({"p": os.getpid(), "m": name, "t": t, "j": job, **extra})
    with _lock:
        if _file is None or _file[0] != os.getpid():
            folder = Path(os.environ.get("BENCH_RUN_DIR", ".")) / "trace"
            folder.mkdir(parents=True, exist_ok=True)
            _file = (os.getpid(), (folder / f"{os.getpid()}.jsonl").open("a", buffering=1))
        _file[1].write(line + "\n")


current: dict[str, Any] = {"job": None}


def sql_timer(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    t0 = time.time()
    try:
        return execute(sql, params, many, context)
    finally:
        mark("sql", current["job"], ms=(time.time() - t0) * 1e3, q=sql[:60], t0=t0)


def _wrap(module: Any, name: str, label: str, job_of: Any) -> None:
    original = getattr(module, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        job = job_of(args, kwargs)
        mark(f"{label}.start", job)
        try:
            return original(*args, **kwargs)
        finally:
            mark(f"{label}.end", job)

    setattr(module, name, wrapper)


def install() -> None:
    import gc

    from celery.signals import task_postrun, task_prerun

    gc_started: dict[str, float] = {}

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started["t"] = time.perf_counter()
            return
        spent = (time.perf_counter() - gc_started.get("t", time.perf_counter())) * 1e3
        if spent > 1.0:
            mark("gc", None, gen=info["generation"], ms=spent)

    gc.callbacks.append(gc_timer)

    from domain.jobs import dispatch, quick, runner
    from domain.jobs.dispatch import RUN_JOB_TASK
    from realtime import publish

    _wrap(runner, "claim", "claim", lambda a, k: a[0])
    _wrap(quick, "hold", "hold", lambda a, k: a[0])  # a held run (domain/jobs/quick.py)
    _wrap(runner, "_finish", "finish", lambda a, k: a[0].pk)
    _wrap(dispatch, "send", "dispatch", lambda a, k: a[0])

    original_send = publish.Publisher._send

    def send(self: Any, layer: Any, batch: list[Any]) -> None:
        messages = _messages_of(batch)
        job, types = messages[0].get("job_id"), [m.get("event_type") for m in messages]
        mark("publish.start", job, n=len(batch), types=types)
        original_send(self, layer, batch)
        mark("publish.end", job)

    publish.Publisher._send = send  # type: ignore[method-assign]

    original_submit = publish.Publisher.submit

    def submit(self: Any, sends: list[Any]) -> None:
        if sends:
            messages = _messages_of(sends)
            types = [m.get("event_type") for m in messages]
            mark("publish.submit", messages[0].get("job_id"), types=types)
        original_submit(self, sends)

    publish.Publisher.submit = submit  # type: ignore[method-assign]

    _install_broker_marks(dispatch)

    current.clear()
    current["job"] = None

    from django.db import connection
    from django.db.backends.signals import connection_created

    def _created(sender: Any, connection: Any, **kw: Any) -> None:
        mark("db.connect", current["job"])

    connection_created.connect(_created, weak=False)

    def _job_of_task(task: Any, args: Any) -> Any:
        # The floor's task (bench/realtime/floor.py) takes a workspace pk, not a job's.
        return (args or [None])[0] if task.name == RUN_JOB_TASK else None

    @task_prerun.connect(weak=False)
    def _prerun(task_id: str, task: Any, args: Any = None, **kw: Any) -> None:
        current["job"] = _job_of_task(task, args)
        mark("task.prerun", current["job"])
        if not any(w is sql_timer for w in connection.execute_wrappers):
            connection.execute_wrappers.append(sql_timer)

    @task_postrun.connect(weak=False)
    def _postrun(task_id: str, task: Any, args: Any = None, **kw: Any) -> None:
        mark("task.postrun", _job_of_task(task, args))

    from domain.jobs import registry

    kind = registry.get("bench.noop")
    original_handler = kind.handler

    def handler(ctx: Any) -> Any:
        mark("handler", ctx.job.pk)
        return original_handler(ctx)

    object.__setattr__(kind, "handler", handler)

    from realtime.consumer import DepotWSConsumer

    original_dispatch = DepotWSConsumer.dispatch

    async def dispatch_(self: Any, message: Any) -> None:
        if message.get("type") == "depot.event":
            mark("ws.dispatch", message.get("job_id"), e=message.get("event_type"))
        await original_dispatch(self, message)

    DepotWSConsumer.dispatch = dispatch_  # type: ignore[method-assign]


def _messages_of(sends: list[Any]) -> list[dict[str, Any]]:
    """The messages of (group, message) sends, a depot.events message's events one by one."""
    return [event for _, message in sends for event in message.get("events", [message])]


def _job_of_message(message: Any) -> int | None:
    try:
        return int(str(message.headers.get("argsrepr", "")).strip("(),[] "))
    except (AttributeError, TypeError, ValueError):
        return None


def _install_broker_marks(dispatch: Any) -> None:
    """The broker hand-off in detail: the server's LPUSH, and in the worker's parent the BRPOP
    reply, kombu's unacked bookkeeping (a Redis round trip, with ack emulation only) and
    Celery's task_received."""
    from celery.signals import task_received
    from kombu.transport import redis as kombu_redis

    from domain.jobs.dispatch import RUN_JOB_TASK

    sending: dict[str, Any] = {"job": None}
    original_send = dispatch.send

    # Whatever dispatch.send takes after the job id (its lane, its kind since time limits,
    # redelivery): passed through, so a change of its signature does not break the trace.
    def send(job_id: int, *args: Any, **kwargs: Any) -> None:
        sending["job"] = job_id
        try:
            original_send(job_id, *args, **kwargs)
        finally:
            sending["job"] = None

    dispatch.send = send

    original_put = kombu_redis.Channel._put

    def put(self: Any, queue: str, message: Any, **kwargs: Any) -> Any:
        mark("put.start", sending["job"])
        try:
            return original_put(self, queue, message, **kwargs)
        finally:
            mark("put.end", sending["job"])

    kombu_redis.Channel._put = put  # type: ignore[method-assign]

    read_at: dict[str, float] = {}
    original_read = kombu_redis.Channel._brpop_read

    def brpop_read(self: Any, **options: Any) -> Any:
        read_at["t"] = time.time()
        return original_read(self, **options)

    kombu_redis.Channel._brpop_read = brpop_read  # type: ignore[method-assign]

    original_append = kombu_redis.QoS.append

    def append(self: Any, message: Any, delivery_tag: Any) -> Any:
        job = _job_of_message(message)
        if "t" in read_at:
            mark("brpop.read", job, at=read_at.pop("t"))
        try:
            return original_append(self, message, delivery_tag)
        finally:
            mark("qos.end", job)

    kombu_redis.QoS.append = append  # type: ignore[method-assign]

    @task_received.connect(weak=False)
    def _received(request: Any = None, **kw: Any) -> None:
        try:
            # The floor's task (floor.py) takes a workspace pk, not a job's.
            job = int(request.args[0]) if request.name == RUN_JOB_TASK else None
        except Exception:
            job = None
        if "t" in read_at:  # no ack emulation: kombu's Redis QoS.append never ran
            mark("brpop.read", job, at=read_at.pop("t"))
        mark("task.received", job)
