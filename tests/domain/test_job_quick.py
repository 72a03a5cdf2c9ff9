"""Held runs (domain/jobs/quick.py): a job is held by a lock on its row until it has run for
DEPOT_JOB_QUICK_SECONDS; one that ends sooner commits its start and its end together (with any
progress it reported). One that runs longer is claimed then, its progress so far with it.
Duplicates and cancels wait for the lock; a run whose session dies leaves the job QUEUED, and
the redelivery is claimed, not held.

These run with real commits (the hold is on a connection of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError, connection
from django.utils import timezone

from domain.accounts.actor import Actor
from domain.accounts.models import User, Workspace
from domain.common.errors import InvalidState
from domain.common.ids import global_id
from domain.jobs import quick, registry, runner, transitions
from domain.jobs.context import JobContext
from domain.jobs.errors import JobFailed
from domain.jobs.models import Event, Job, JobState, Lane
from domain.jobs.services import job_cancel, job_create
from domain.jobs.sweeper import jobs_sweep
from realtime import publish
from tasks.jobs import run_job
from tests.locks import wait_until_a_session_waits_for_a_lock
from tests.realtime.sockets import Socket, close_db

EVENTS = "subscription($w: ID!) { events(workspaceId: $w) { sequence type } }"
STATS = "subscription($w: ID!) { jobStats(workspaceId: $w) { counts { state } } }"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="held runs are Postgres only"),
]

seen: dict[int, dict[str, Any]] = {}
running = threading.Event()
release = threading.Event()


def _row(job_id: int) -> Job:
    return Job.objects.get(pk=job_id)


@registry.register("test.quick.ok", lane=Lane.INTERACTIVE)
def _ok(ctx: JobContext) -> dict[str, Any]:
    return {"fine": True}


@registry.register("test.quick.fails", lane=Lane.INTERACTIVE)
def _fails(ctx: JobContext) -> None:
    raise JobFailed("Not today.", code="NOT_TODAY")


@registry.register("test.quick.waits", lane=Lane.INTERACTIVE)
def _waits(ctx: JobContext) -> dict[str, Any]:
    seen.setdefault(ctx.job.pk, {"runs": 0})["runs"] += 1
    running.set()
    assert release.wait(10)
    return {}


def _row_once_claimed(job_id: int) -> Job:
    """The row as soon as the lease renewer has claimed the held job (within 10 s)."""
    deadline = time.monotonic() + 10
    while (row := _row(job_id)).state != JobState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    return row


@registry.register("test.quick.slow", lane=Lane.INTERACTIVE)
def _slow(ctx: JobContext) -> dict[str, Any]:
    # Runs on past DEPOT_JOB_QUICK_SECONDS, until the renewer has claimed it.
    seen[ctx.job.pk] = {"row": _row_once_claimed(ctx.job.pk), "token": ctx.lease_token}
    return {}


@registry.register("test.quick.progress", lane=Lane.INTERACTIVE)
def _progress(ctx: JobContext) -> dict[str, Any]:
    ctx.progress(1, 2, "half")
    seen[ctx.job.pk] = {"row": _row(ctx.job.pk)}
    return {}


@registry.register("test.quick.progress_then_slow", lane=Lane.INTERACTIVE)
def _progress_then_slow(ctx: JobContext) -> dict[str, Any]:
    ctx.progress(1, 3, "first")
    seen[ctx.job.pk] = {"claimed": _row_once_claimed(ctx.job.pk)}  # with the progress so far
    ctx.progress(2, 3, "second")  # now written at once, as any running job's
    seen[ctx.job.pk]["then"] = _row(ctx.job.pk)
    return {}


claiming = threading.Event()
checked = threading.Event()


@registry.register("test.quick.checks_during_the_claim", lane=Lane.INTERACTIVE)
def _checks_during_the_claim(ctx: JobContext) -> dict[str, Any]:
    assert claiming.wait(10)  # the renewer's claim is under way, not committed yet
    try:
        ctx.check_cancelled()  # must not read the row as a running job's yet
    finally:
        checked.set()
    ctx.progress(1, 2, "after")  # waits for the claim, then writes as a running job's
    return {}


@registry.register("test.quick.session_dies", lane=Lane.INTERACTIVE)
def _session_dies(ctx: JobContext) -> dict[str, Any]:
    if ctx.held is None:
        return {}  # claimed (the redelivery): nothing dies
    # As if the worker died: Postgres ends the session that holds the row.
    held_pid = quick._threads.db.connection.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [held_pid])
    return {}


@pytest.fixture(autouse=True)
def _fresh() -> None:
    seen.clear()
    for event in (running, release, claiming, checked):
        event.clear()


def _job(workspace: Workspace, kind: str) -> Job:
    with mock.patch("domain.jobs.dispatch.send"):
        return job_create(workspace_id=workspace.pk, kind=kind, parameters={}, created_by_id=None)


def _job_events(job: Job) -> list[tuple[str, dict[str, Any], str]]:
    """The job's events after job.queued: type, payload and the id of the transaction that
    wrote them (Postgres' xmin)."""
    rows = Event.objects.filter(payload__jobId=global_id("Job", job.pk)).order_by("sequence")
    by_id = {e.id: e for e in rows if e.type != "job.queued"}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, xmin::text FROM jobs_event WHERE id = ANY(%s)", [list(by_id) or [0]]
        )
        xmins = dict(cursor.fetchall())
    return [(e.type, e.payload, xmins[e.id]) for e in by_id.values()]


def _in_thread(target: Any, *args: Any) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target(*args)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def test_a_quick_job_commits_its_start_and_its_end_together(workspace: Workspace) -> None:
    job = _job(workspace, "test.quick.ok")
    published: list[list[dict[str, Any]]] = []
    with (
        mock.patch("realtime.publish.publish_events", side_effect=published.append),
        mock.patch.object(transitions, "claim_in_one_statement") as claim,
        mock.patch.object(transitions, "finish_in_one_statement") as finish,
    ):
        runner.execute(job.pk)
    claim.assert_not_called()
    finish.assert_not_called()
    row = _row(job.pk)
    assert (row.state, row.result, row.attempts) == (JobState.SUCCEEDED, {"fine": True}, 1)
    assert (row.lease_token, row.lease_expires_at) == ("", None)
    assert row.started_at is not None
    assert row.finished_at is not None
    assert row.started_at <= row.finished_at
    events = _job_events(row)
    base = {"jobId": global_id("Job", job.pk), "kind": "test.quick.ok"}
    assert [(t, p) for t, p, _ in events] == [
        ("job.started", {**base, "state": "RUNNING", "attempt": 1}),
        ("job.succeeded", {**base, "state": "SUCCEEDED"}),
    ]
    assert events[0][2] == events[1][2]  # one transaction wrote both
    # Published once the two committed, in one batch, in order.
    [batch] = published
    assert [(m["event_type"], m["payload"]) for m in batch] == [(t, p) for t, p, _ in events]


def test_a_quick_job_that_fails_records_its_start_and_its_failure_together(
    workspace: Workspace,
) -> None:
    job = _job(workspace, "test.quick.fails")
    runner.execute(job.pk)
    row = _row(job.pk)
    assert (row.state, row.error, row.attempts) == (
        JobState.FAILED,
        {"code": "NOT_TODAY", "message": "Not today."},
        1,
    )
    events = _job_events(row)
    assert [t for t, _, _ in events] == ["job.started", "job.failed"]
    assert events[0][2] == events[1][2]


def test_a_job_that_runs_longer_is_claimed_while_it_runs(
    workspace: Workspace, settings: Any
) -> None:
    settings.DEPOT_JOB_QUICK_SECONDS = 0.05
    job = _job(workspace, "test.quick.slow")
    with mock.patch.object(
        transitions, "finish_in_one_statement", wraps=transitions.finish_in_one_statement
    ) as finish:
        runner.execute(job.pk)
    during = seen[job.pk]["row"]  # the row as the handler read it, once claimed
    assert during.state == JobState.RUNNING
    assert during.lease_token == seen[job.pk]["token"]
    assert during.lease_expires_at > timezone.now()
    assert during.attempts == 1
    finish.assert_called_once()  # the ordinary end of a running job
    row = _row(job.pk)
    assert (row.state, row.attempts, row.started_at) == (
        JobState.SUCCEEDED,
        1,
        during.started_at,
    )
    events = _job_events(row)
    assert [t for t, _, _ in events] == ["job.started", "job.succeeded"]
    assert events[0][2] != events[1][2]  # the claim committed before the end


def test_a_check_for_a_cancel_while_the_renewer_claims_the_job_does_not_lose_it(
    workspace: Workspace, settings: Any
) -> None:
    """The race CI found: the hold said "not held" before the claim had committed, and a check
    for a cancel then read the row (still QUEUED) and took the job for lost."""
    settings.DEPOT_JOB_QUICK_SECONDS = 0.05
    job = _job(workspace, "test.quick.checks_during_the_claim")
    commit_with = quick._commit_with

    def slow_claim(*args: Any, **kwargs: Any) -> Any:
        claiming.set()
        assert checked.wait(10)  # the handler checks while the claim is under way
        return commit_with(*args, **kwargs)

    with mock.patch.object(quick, "_commit_with", slow_claim):
        runner.execute(job.pk)
    row = _row(job.pk)
    assert (row.state, row.attempts, row.progress_stage) == (JobState.SUCCEEDED, 1, "after")


def test_progress_reported_while_held_is_written_with_the_end(
    workspace: Workspace, settings: Any
) -> None:
    settings.DEPOT_JOB_QUICK_SECONDS = 60
    job = _job(workspace, "test.quick.progress")
    with mock.patch("realtime.publish.publish_job_progress") as nudge:
        runner.execute(job.pk)
    during = seen[job.pk]["row"]  # still held: the row is as it was
    assert (during.state, during.progress_stage, during.progress_total) == (
        JobState.QUEUED,
        "",
        None,
    )
    nudge.assert_not_called()  # nothing to read yet: the end says it all
    row = _row(job.pk)
    assert (row.state, row.attempts) == (JobState.SUCCEEDED, 1)
    assert (row.progress_done, row.progress_total, row.progress_stage) == (2, 2, "half")


def test_progress_reported_while_held_is_written_by_the_claim(
    workspace: Workspace, settings: Any
) -> None:
    settings.DEPOT_JOB_QUICK_SECONDS = 0.05
    job = _job(workspace, "test.quick.progress_then_slow")
    runner.execute(job.pk)
    claimed, then = seen[job.pk]["claimed"], seen[job.pk]["then"]
    assert claimed.state == JobState.RUNNING
    assert (claimed.progress_done, claimed.progress_total, claimed.progress_stage) == (
        1,
        3,
        "first",
    )
    assert (then.progress_done, then.progress_stage) == (2, "second")
    row = _row(job.pk)
    assert (row.state, row.attempts, row.progress_done) == (JobState.SUCCEEDED, 1, 3)


@contextlib.contextmanager
def _held_meanwhile(job: Job) -> Iterator[None]:
    """Inside, `job` (test.quick.waits) is held by its run in another thread, whose handler
    waits; after, that run has ended, and it succeeded."""
    run, errors = _in_thread(runner.execute, job.pk)
    try:
        assert running.wait(10)
        yield
    finally:
        release.set()
        run.join(10)
    assert errors == []
    assert _row(job.pk).state == JobState.SUCCEEDED


def test_a_duplicate_delivery_waits_for_the_held_job_and_then_does_nothing(
    workspace: Workspace, settings: Any
) -> None:
    settings.DEPOT_JOB_QUICK_SECONDS = 60
    job = _job(workspace, "test.quick.waits")
    with _held_meanwhile(job):
        assert _row(job.pk).state == JobState.QUEUED  # held, not claimed
        duplicate, duplicate_errors = _in_thread(runner.execute, job.pk)
        wait_until_a_session_waits_for_a_lock("the duplicate's claim")  # on the held row
    duplicate.join(10)
    assert duplicate_errors == []
    assert seen[job.pk]["runs"] == 1
    row = _row(job.pk)
    assert (row.state, row.attempts) == (JobState.SUCCEEDED, 1)
    assert [t for t, _, _ in _job_events(row)] == ["job.started", "job.succeeded"]


def test_a_cancel_waits_for_the_held_job_and_finds_it_finished(
    workspace: Workspace, owner: User, settings: Any
) -> None:
    settings.DEPOT_JOB_QUICK_SECONDS = 60
    job = _job(workspace, "test.quick.waits")
    with _held_meanwhile(job):
        cancel, cancel_errors = _in_thread(
            lambda: job_cancel(job_id=job.pk, actor=Actor(user=owner))
        )
        wait_until_a_session_waits_for_a_lock("the cancel")
    cancel.join(10)
    [error] = cancel_errors
    assert isinstance(error, InvalidState)


def test_the_sweeper_passes_a_held_job_by_without_waiting(
    workspace: Workspace, settings: Any
) -> None:
    settings.DEPOT_JOB_QUICK_SECONDS = 60
    job = _job(workspace, "test.quick.waits")
    Job.objects.filter(pk=job.pk).update(next_dispatch_at=timezone.now() - timedelta(hours=1))
    with _held_meanwhile(job), mock.patch("domain.jobs.dispatch.send") as send:
        started = time.monotonic()
        swept = jobs_sweep()
        assert time.monotonic() - started < 5  # release.wait(10) would end it otherwise
    assert swept["redispatched"] == 0
    send.assert_not_called()


def test_a_held_job_whose_session_dies_is_queued_again_and_its_redelivery_is_claimed(
    workspace: Workspace, settings: Any
) -> None:
    settings.DEPOT_JOB_QUICK_SECONDS = 60
    job = _job(workspace, "test.quick.session_dies")
    with pytest.raises(OperationalError):
        runner.execute(job.pk)
    row = _row(job.pk)
    assert (row.state, row.attempts, row.started_at) == (JobState.QUEUED, 0, None)
    assert _job_events(row) == []

    # The sweeper sends it again as a redelivery, which is claimed (and counts an attempt).
    Job.objects.filter(pk=job.pk).update(next_dispatch_at=timezone.now() - timedelta(hours=1))
    with mock.patch("domain.jobs.dispatch.send") as send:
        jobs_sweep()
    send.assert_called_once_with(job.pk, Lane.INTERACTIVE.value, job.kind, redelivery=True)
    with mock.patch.object(quick, "hold") as hold:
        runner.execute(job.pk, redelivery=True)
    hold.assert_not_called()
    row = _row(job.pk)
    assert (row.state, row.attempts) == (JobState.SUCCEEDED, 1)
    events = _job_events(row)
    assert [t for t, _, _ in events] == ["job.started", "job.succeeded"]
    assert events[0][2] != events[1][2]


@pytest.mark.services
def test_a_subscriber_hears_a_held_jobs_start_and_end_once_each_in_order(
    workspace: Workspace, token: str
) -> None:
    """Both events reach the workspace's group as one message; the consumer hands each on."""
    job = _job(workspace, "test.quick.ok")

    def run() -> None:
        runner.execute(job.pk)
        publish.flush()

    async def scenario() -> list[dict[str, Any]]:
        socket = Socket()
        await socket.open(token)
        try:
            workspace_id = global_id("Workspace", workspace.pk)
            await socket.subscribe("events", EVENTS, {"w": workspace_id})
            # Subscriptions join their groups in order: once jobStats answers, events is live.
            await socket.subscribe("stats", STATS, {"w": workspace_id})
            await socket.collect("stats", 1)
            with mock.patch.object(
                publish, "_event_sends", wraps=publish._event_sends
            ) as event_sends:
                await sync_to_async(run)()
            [[messages], _] = event_sends.call_args
            assert [m["event_type"] for m in messages] == ["job.started", "job.succeeded"]
            frames = await socket.collect("events", 2)
            return [json.loads(frame)["payload"]["data"]["events"] for frame in frames]
        finally:
            await socket.close()
            await sync_to_async(close_db)()

    heard = asyncio.run(scenario())
    assert [e["type"] for e in heard] == ["job.started", "job.succeeded"]
    assert heard[1]["sequence"] == heard[0]["sequence"] + 1


def test_the_task_passes_on_a_redelivery_the_sweepers_or_the_brokers() -> None:
    with mock.patch.object(runner, "execute") as execute:
        run_job.run(7)
        run_job.run(8, redelivery=True)
        run_job.push_request(delivery_info={"redelivered": True})
        try:
            run_job.run(9)
        finally:
            run_job.pop_request()
        # The message's time limits (hard, soft): the runner records the hard one's deadline.
        run_job.push_request(timelimit=(40.0, 30.0))
        try:
            run_job.run(10)
        finally:
            run_job.pop_request()
    assert execute.call_args_list == [
        mock.call(7, redelivery=False, time_limit=None),
        mock.call(8, redelivery=True, time_limit=None),
        mock.call(9, redelivery=True, time_limit=None),
        mock.call(10, redelivery=False, time_limit=40.0),
    ]


def test_no_job_is_held_when_turned_off(workspace: Workspace, settings: Any) -> None:
    settings.DEPOT_JOB_QUICK_SECONDS = 0
    job = _job(workspace, "test.quick.ok")
    with mock.patch.object(quick, "hold") as hold:
        runner.execute(job.pk)
    hold.assert_not_called()
    events = _job_events(_row(job.pk))
    assert events[0][2] != events[1][2]
