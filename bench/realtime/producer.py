"""The event producer: a separate process that commits durable events the way Depot does.

    DJANGO_SETTINGS_MODULE=bench.realtime.settings python -m bench.realtime.producer

Each event is domain.jobs.events.record() inside transaction.atomic(): the per-workspace
sequence is taken from EventCounter, the Event row is written, and after COMMIT Depot's
realtime.publish sends the `depot.event` message to the workspace's group (async_to_sync
group_send, as in a Celery worker). A transaction.on_commit callback registered *before* record()
runs right after COMMIT and before the publish, and stamps the commit time; the payload carries
the time taken just before the transaction began ("t"), and its index ("i").

Driven by one JSON command per line on stdin, one JSON answer per line on stdout:
  {"cmd": "emit", "ws": PK, "count": N, "interval": S, "type": T}
      N events, one every S seconds on a fixed schedule (S=0: back to back)
      -> {"seqs": [...], "t_start": [...], "t_commit": [...], "t_published": [...]}
  {"cmd": "collections", "ws": PK, "count": N}     -> {"ids": [global ids of N empty collections]}
  {"cmd": "jobtimes", "pks": [...]}               -> {"rows": [[pk, state, created, started,
                                                      finished] as epoch seconds, ...]}
  {"cmd": "nudge"}          Depot's credentials_changed_after_commit for the bench user: every
                            socket of the user re-checks its credentials at once -> {"t": ...}
  {"cmd": "publish_cost", "count": N}   how long Depot's publish takes from a sync caller (a
                            Celery worker, this process), against alternatives -> {"<way>": ms}
  {"cmd": "ping"}            -> {"ok": true} once Django is set up
  {"cmd": "quit"}
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any


def main() -> None:
    import django

    django.setup()
    from django.db import transaction

    from domain.accounts.actor import Actor
    from domain.accounts.models import User
    from domain.assets.services import collection_create
    from domain.common.ids import global_id
    from domain.jobs import events
    from domain.jobs.models import Job

    def emit(ws: int, count: int, interval: float, type_: str) -> dict[str, Any]:
        seqs: list[int] = []
        t_start: list[float] = []
        t_commit: list[float] = []
        t_published: list[float] = []
        begin = time.monotonic()
        for i in range(count):
            if interval:
                wait = begin + i * interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            marks: dict[str, float] = {}
            started = time.time()
            with transaction.atomic():
                transaction.on_commit(lambda m=marks: m.__setitem__("commit", time.time()))
                event = events.record(ws, type_, {"i": i, "t": started})
            t_published.append(time.time())
            seqs.append(event.sequence)
            t_start.append(started)
            t_commit.append(marks["commit"])
        return {"seqs": seqs, "t_start": t_start, "t_commit": t_commit, "t_published": t_published}

    def collections(ws: int, count: int) -> dict[str, Any]:
        actor = Actor(user=User.objects.get(username="bench-rt"))
        tag = uuid.uuid4().hex[:8]
        ids = [
            global_id(
                "Collection",
                collection_create(
                    workspace_id=ws, name=f"c-{tag}-{n}", description="", actor=actor
                ).pk,
            )
            for n in range(count)
        ]
        return {"ids": ids}

    def jobtimes(pks: list[int]) -> dict[str, Any]:
        def ts(value: Any) -> float | None:
            return value.timestamp() if value is not None else None

        rows = [
            [job.pk, job.state, ts(job.created_at), ts(job.started_at), ts(job.finished_at)]
            for job in Job.objects.filter(pk__in=pks)
        ]
        return {"rows": rows}

    def nudge() -> dict[str, Any]:
        from realtime.publish import credentials_changed_after_commit

        user = User.objects.get(username="bench-rt")
        with transaction.atomic():
            credentials_changed_after_commit(user.pk)
        return {"t": time.time()}

    for line in sys.stdin:
        command = json.loads(line)
        name = command.pop("cmd")
        if name == "quit":
            break
        if name == "emit":
            answer = emit(command["ws"], command["count"], command["interval"], command["type"])
        elif name == "collections":
            answer = collections(command["ws"], command["count"])
        elif name == "jobtimes":
            answer = jobtimes(command["pks"])
        elif name == "ping":
            answer = {"ok": True}
        elif name == "nudge":
            answer = nudge()
        elif name == "publish_cost":
            answer = publish_cost(command["count"])
        else:
            answer = {"error": f"unknown command {name}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def publish_cost(count: int) -> dict[str, Any]:
    """ms per publish from sync code, to groups with one (never read) member each:
    depot_event:   realtime.publish._send once (an event without a job): async_to_sync per send
    depot_job_event: three _send calls (an event with a job: events group + the job's two groups)
    one_async_to_sync: the same three group_sends inside one async_to_sync call
    persistent_loop: the same three group_sends on a long-lived loop in a thread (one pool)
    """
    import asyncio
    import statistics
    import threading

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from realtime import publish

    layer = get_channel_layer()
    groups = [f"bench.cost.{n}" for n in range(3)]
    message = publish.event_message(
        workspace_id=0, sequence=1, type="bench.cost", payload={"i": 0}, created_at="x"
    )

    async def join() -> None:
        for group in groups:
            await layer.group_add(group, "specific.benchcost!sink")

    async def three() -> None:
        for group in groups:
            await layer.group_send(group, message)

    async_to_sync(join)()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    ways = {
        "depot_event": lambda: publish._send(groups[0], message),
        "depot_job_event": lambda: [publish._send(g, message) for g in groups],
        "one_async_to_sync": lambda: async_to_sync(three)(),
        "persistent_loop": lambda: asyncio.run_coroutine_threadsafe(three(), loop).result(),
    }
    result: dict[str, Any] = {}
    for name, call in ways.items():
        call()  # warm
        times = []
        for _ in range(count):
            t0 = time.perf_counter()
            call()
            times.append((time.perf_counter() - t0) * 1e3)
        result[name] = {"p50": statistics.median(times), "max": max(times)}
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    return result


if __name__ == "__main__":
    main()
