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
  {"cmd": "cancelled_noops", "ws": PK, "count": N} -> {"ids": [global ids of N cancelled
                                                  bench.noop jobs, for jobRetry]}
  {"cmd": "jobtimes", "pks": [...]}               -> {"rows": [[pk, state, dispatched, started,
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
    from django.utils import timezone

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

    def cancelled_noops(ws: int, count: int) -> dict[str, Any]:
        # What jobRetry takes: bench.noop jobs that ended cancelled before any worker ran them.
        from bench.realtime.noop import NOOP_JOB
        from domain.jobs.models import JobState, Lane

        user = User.objects.get(username="bench-rt")
        jobs = Job.objects.bulk_create(
            Job(
                workspace_id=ws,
                kind=NOOP_JOB,
                lane=Lane.INTERACTIVE,
                state=JobState.CANCELLED,
                created_by=user,
                finished_at=timezone.now(),
            )
            for _ in range(count)
        )
        return {"ids": [global_id("Job", job.pk) for job in jobs]}

    def jobtimes(pks: list[int]) -> dict[str, Any]:
        def ts(value: Any) -> float | None:
            return value.timestamp() if value is not None else None

        # dispatched_at, not created_at: a retried job was created long before its new run.
        rows = [
            [job.pk, job.state, ts(job.dispatched_at), ts(job.started_at), ts(job.finished_at)]
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
        elif name == "cancelled_noops":
            answer = cancelled_noops(command["ws"], command["count"])
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
    before_event: the old realtime.publish (until issue 4): async_to_sync(group_send) per send,
        for an event without a job (one send)
    before_job_event: the same for a job event (events group + the job's two groups: 3 sends)
    one_async_to_sync: the same three group_sends inside one async_to_sync call
    depot_commit_waits: what a committing caller waits for now: publish_events() of a job event
        (queued for the process's publisher thread)
    depot_until_sent: publish_events() of a job event until its publisher thread has sent all
        three (publish.flush())
    """
    import statistics

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from realtime import publish

    layer = get_channel_layer()
    message = publish.event_message(
        workspace_id=0, sequence=1, type="bench.cost", payload={"i": 0}, created_at="x", job_id=0
    )
    groups = [group for group, _ in publish._event_sends([message])]

    async def join() -> None:
        for group in groups:
            await layer.group_add(group, "specific.benchcost!sink")

    async def three() -> None:
        for group in groups:
            await layer.group_send(group, message)

    def old_send(group: str) -> None:
        async_to_sync(layer.group_send)(group, message)

    async_to_sync(join)()
    ways = {
        "before_event": lambda: old_send(groups[0]),
        "before_job_event": lambda: [old_send(g) for g in groups],
        "one_async_to_sync": lambda: async_to_sync(three)(),
        "depot_commit_waits": lambda: publish.publish_events([message]),
        "depot_until_sent": lambda: (publish.publish_events([message]), publish.flush()),
    }
    result: dict[str, Any] = {}
    for name, call in ways.items():
        call()  # warm
        publish.flush()
        times = []
        for _ in range(count):
            t0 = time.perf_counter()
            call()
            times.append((time.perf_counter() - t0) * 1e3)
            publish.flush()
        result[name] = {"p50": statistics.median(times), "max": max(times)}
    return result


if __name__ == "__main__":
    main()
