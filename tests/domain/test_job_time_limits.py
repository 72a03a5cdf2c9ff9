"""Time limits: a run stopped by its kind's soft limit ends FAILED with JOB_TIMED_OUT, and one
killed by the hard limit (its worker's child is gone, its lease runs out) ends so too, from the
sweeper, instead of running again. Celery's own signals are in tests/e2e/test_time_limits.py
(a prefork worker); here the handler raises what Celery would raise."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from domain.accounts.models import Workspace
from domain.jobs import dispatch, registry, runner, sweeper, time_limits
from domain.jobs.context import JobContext
from domain.jobs.models import Event, Job, JobState, Lane
from domain.jobs.services import job_create
from domain.jobs.sweeper import jobs_sweep

ran: list[int] = []
abandoned: list[tuple[int, str]] = []


@registry.register("test.limits.soft", lane=Lane.INTERACTIVE, time_limit=7)
def _interrupted(ctx: JobContext) -> None:
    ran.append(ctx.job.pk)
    raise SoftTimeLimitExceeded()  # as Celery raises it in a prefork child


@registry.register("test.limits.default", lane=Lane.BULK)
def _runs(ctx: JobContext) -> None:
    ran.append(ctx.job.pk)


for _kind in ("test.limits.soft", "test.limits.default"):
    registry.on_abandon(_kind, lambda job, error: abandoned.append((job.pk, error["code"])))


@pytest.fixture(autouse=True)
def _reset() -> None:
    ran.clear()
    abandoned.clear()
    hook_failed_at.clear()


@contextmanager
def _clock(at: datetime) -> Iterator[None]:
    with mock.patch("django.utils.timezone.now", return_value=at):
        yield


def _job(workspace: Workspace, kind: str) -> Job:
    with mock.patch("domain.jobs.dispatch.send"):
        return job_create(workspace_id=workspace.pk, kind=kind, parameters={}, created_by_id=None)


def _job_events(job: Job) -> list[tuple[str, Any]]:
    """The job's events (each test has one job), and the error each carries."""
    events = Event.objects.filter(type__startswith="job.").order_by("sequence")
    return [(e.type, e.payload.get("error")) for e in events]


@pytest.mark.django_db
@pytest.mark.parametrize("quick", [True, False], ids=["held", "claimed"])
def test_a_run_stopped_by_its_soft_time_limit_fails_with_job_timed_out(
    workspace: Workspace, settings: Any, quick: bool
) -> None:
    """It failed with INTERNAL_ERROR, as any unexpected exception."""
    settings.DEPOT_JOB_QUICK_SECONDS = 0.05 if quick else 0
    job = _job(workspace, "test.limits.soft")
    runner.execute(job.pk, time_limit=37)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error == {
        "code": "JOB_TIMED_OUT",
        "message": "The job ran longer than its time limit (7 s) and was stopped.",
    }
    assert [t for t, _ in _job_events(job)] == ["job.queued", "job.started", "job.failed"]
    assert _job_events(job)[-1][1]["code"] == "JOB_TIMED_OUT"
    # What the handler may not have cleaned up, its kind's hook does, with the job's end.
    assert abandoned == [(job.pk, "JOB_TIMED_OUT")]


def test_each_message_carries_its_kinds_time_limits(settings: Any) -> None:
    settings.DEPOT_EMBEDDED_WORKER = False
    settings.DEPOT_JOB_TIME_LIMIT_SECONDS = 900
    settings.DEPOT_JOB_HARD_TIME_LIMIT_MARGIN_SECONDS = 30
    with mock.patch.object(dispatch, "current_app") as app:
        dispatch.send(1, Lane.INTERACTIVE, "test.limits.soft")
        dispatch.send(2, Lane.BULK, "test.limits.default", redelivery=True)
        settings.DEPOT_EMBEDDED_WORKER = True  # threads: Celery enforces no limit there
        dispatch.send(3, Lane.BULK, "test.limits.default")
    limits = [
        (call.kwargs["args"], call.kwargs.get("soft_time_limit"), call.kwargs.get("time_limit"))
        for call in app.send_task.call_args_list
    ]
    assert limits == [([1], 7, 37), ([2], 900, 930), ([3], None, None)]


def _killed_by_its_hard_limit(
    workspace: Workspace, start: datetime, kind: str = "test.limits.default"
) -> Job:
    """A job whose run had a hard deadline 10 s after its claim, and whose worker renewed the
    lease until it was killed there: the lease ran out a little after the deadline."""
    job = _job(workspace, kind)
    with _clock(start):
        assert runner.claim(job.pk, deadline=start + timedelta(seconds=10)) is not None
    job.refresh_from_db()
    assert job.deadline_at == start + timedelta(seconds=10)
    Job.objects.filter(pk=job.pk).update(lease_expires_at=start + timedelta(seconds=12))
    return job


@pytest.mark.django_db
def test_the_sweeper_ends_a_run_its_hard_limit_killed_and_does_not_send_it_again(
    workspace: Workspace, settings: Any
) -> None:
    """It sent it again: the run timed out again at each attempt, until TOO_MANY_ATTEMPTS."""
    settings.DEPOT_JOB_QUICK_SECONDS = 0
    start = timezone.now()
    killed = _killed_by_its_hard_limit(workspace, start)
    # Lost before its deadline (its lease ran out 5 s before it): a dead worker, sent again.
    lost = _job(workspace, "test.limits.default")
    with _clock(start):
        assert runner.claim(lost.pk, deadline=start + timedelta(seconds=10)) is not None
    Job.objects.filter(pk=lost.pk).update(lease_expires_at=start + timedelta(seconds=5))

    with _clock(start + timedelta(seconds=13)), mock.patch.object(dispatch, "send") as send:
        swept = jobs_sweep()
    assert [call.args[0] for call in send.call_args_list] == [lost.pk]
    assert swept["timed_out"] == 1
    killed.refresh_from_db()
    assert (killed.state, killed.attempts) == (JobState.FAILED, 1)
    assert killed.error == {
        "code": "JOB_TIMED_OUT",
        "message": "The job ran past its time limit and its worker was stopped.",
    }
    assert abandoned == [(killed.pk, "JOB_TIMED_OUT")]
    failed = Event.objects.get(type="job.failed")
    assert failed.payload["error"]["code"] == "JOB_TIMED_OUT"
    assert Job.objects.get(pk=lost.pk).state == JobState.RUNNING


@pytest.mark.django_db
def test_a_stale_message_of_a_run_its_hard_limit_killed_ends_it_without_running_it(
    workspace: Workspace, settings: Any
) -> None:
    settings.DEPOT_JOB_QUICK_SECONDS = 0
    start = timezone.now()
    killed = _killed_by_its_hard_limit(workspace, start)
    with _clock(start + timedelta(seconds=13)):
        runner.execute(killed.pk, redelivery=True)
    killed.refresh_from_db()
    assert (killed.state, killed.error and killed.error["code"]) == (
        JobState.FAILED,
        "JOB_TIMED_OUT",
    )
    assert ran == []
    assert abandoned == [(killed.pk, "JOB_TIMED_OUT")]


@registry.register("test.limits.hook_fails", lane=Lane.BULK)
def _hook_fails(ctx: JobContext) -> None:
    ran.append(ctx.job.pk)


hook_failed_at: list[tuple[int, datetime]] = []


def _raising_hook(job: Job, error: dict[str, Any]) -> None:
    hook_failed_at.append((job.pk, timezone.now()))
    raise RuntimeError("the hook failed")


registry.on_abandon("test.limits.hook_fails", _raising_hook)


@pytest.mark.django_db
def test_a_killed_run_that_cannot_be_ended_stops_nothing_else_in_the_sweep(
    workspace: Workspace, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The exception of its kind's on_abandon hook left jobs_sweep before it sent anything or
    pruned anything, at every sweep."""
    settings.DEPOT_JOB_QUICK_SECONDS = 0
    settings.DEPOT_EVENT_RETENTION_DAYS = 7
    start = timezone.now()
    # An old event, due for pruning.
    with _clock(start - timedelta(days=8)):
        old = _job(workspace, "test.limits.default")
    Job.objects.filter(pk=old.pk).update(state=JobState.SUCCEEDED)
    old_events = Event.objects.filter(pk=Event.objects.latest("pk").pk)
    old_events.update(created_at=start - timedelta(days=8))
    failing = _job(workspace, "test.limits.hook_fails")
    with _clock(start):
        assert runner.claim(failing.pk, deadline=start + timedelta(seconds=10)) is not None
    Job.objects.filter(pk=failing.pk).update(lease_expires_at=start + timedelta(seconds=12))
    killed = _killed_by_its_hard_limit(workspace, start)
    with _clock(start - timedelta(seconds=60)):
        waiting = _job(workspace, "test.limits.default")  # overdue: sent again
    assert old_events.exists()

    with _clock(start + timedelta(seconds=13)), mock.patch.object(dispatch, "send") as send:
        swept = jobs_sweep()

    assert [call.args[0] for call in send.call_args_list] == [waiting.pk]
    assert not old_events.exists()
    assert swept["pruned"] >= 1
    assert (swept["timed_out"], swept["errors"]) == (1, 1)
    # The other killed run ended; the failing one is as it was, for the next sweep.
    assert Job.objects.get(pk=killed.pk).state == JobState.FAILED
    assert Job.objects.get(pk=failing.pk).state == JobState.RUNNING
    [record] = [r for r in caplog.records if "killed by its time limit, failed" in r.getMessage()]
    assert record.exc_info is not None


@pytest.mark.django_db
def test_killed_runs_whose_hook_keeps_failing_neither_starve_the_others_nor_loop_for_ever(
    workspace: Workspace, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Such runs were tried again, and logged, at every sweep, first in its batch: with more of
    them than a batch, a run killed later was never ended, and they were tried for ever."""
    settings.DEPOT_JOB_QUICK_SECONDS = 0
    settings.DEPOT_DISPATCH_GRACE_SECONDS = 30
    settings.DEPOT_REDISPATCH_MAX_SECONDS = 600
    batch = 4  # SWEEP_BATCH, 1,000 in production
    start = timezone.now()
    failing = [
        _killed_by_its_hard_limit(workspace, start, "test.limits.hook_fails")
        for _ in range(batch + 2)
    ]
    newer = _killed_by_its_hard_limit(workspace, start + timedelta(seconds=1))
    every = 15  # seconds between sweeps, DEPOT_SWEEP_INTERVAL_SECONDS' default
    first = start + timedelta(seconds=14)  # every lease has run out
    ended_at: dict[int, int] = {}  # job -> the sweep that ended it
    with mock.patch.object(sweeper, "SWEEP_BATCH", batch), mock.patch.object(dispatch, "send"):
        for sweep in range(60):  # a quarter of an hour
            with _clock(first + timedelta(seconds=every * sweep)):
                swept = jobs_sweep()
            assert swept["timed_out"] + swept["errors"] <= batch
            for job_id, state in Job.objects.values_list("pk", "state"):
                if state == JobState.FAILED:
                    ended_at.setdefault(job_id, sweep)

    assert ended_at[newer.pk] <= 1
    assert Job.objects.get(pk=newer.pk).error == time_limits.hard_error()
    # Each failing hook was tried a few times, further and further apart, then given up.
    for job in failing:
        tries = [at for job_id, at in hook_failed_at if job_id == job.pk]
        assert len(tries) == time_limits.CLEANUP_TRIES
        gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(tries)]
        for gap, wait in zip(gaps, (30, 60, 120, 240), strict=True):
            assert wait <= gap <= wait + 2 * every, gaps
        job.refresh_from_db()
        assert (job.state, job.lease_token) == (JobState.FAILED, "")
        assert job.error == time_limits.cleanup_failed_error(time_limits.CLEANUP_TRIES)
        assert job.error["code"] == "JOB_CLEANUP_FAILED"
        assert ended_at[job.pk] < 60
    failed = Event.objects.filter(type="job.failed").values_list("payload__error__code", flat=True)
    assert sorted(failed) == sorted(["JOB_TIMED_OUT"] + ["JOB_CLEANUP_FAILED"] * len(failing))
    given_up = [r for r in caplog.records if "without its on_abandon hook" in r.getMessage()]
    assert len(given_up) == len(failing)
    assert all(record.exc_info is not None for record in given_up)


@pytest.mark.django_db
def test_a_failing_step_of_the_sweep_skips_none_of_the_others(
    workspace: Workspace, settings: Any
) -> None:
    start = timezone.now()
    with _clock(start - timedelta(seconds=60)):
        waiting = _job(workspace, "test.limits.default")
    with (
        _clock(start),
        mock.patch(
            "domain.jobs.time_limits.outlived_its_run", side_effect=RuntimeError("query failed")
        ),
        mock.patch.object(dispatch, "send") as send,
        mock.patch("domain.jobs.sweeper.events_prune", side_effect=RuntimeError("deadlock")),
        mock.patch("domain.jobs.sweeper.idempotency_keys_prune", return_value=0) as keys,
    ):
        swept = jobs_sweep()
    # The first step and the third failed; the second and the fourth ran.
    assert [call.args[0] for call in send.call_args_list] == [waiting.pk]
    keys.assert_called_once()
    assert swept == {"redispatched": 1, "timed_out": 0, "pruned": 0, "errors": 2}


@pytest.mark.django_db
@pytest.mark.parametrize("ended_by", ["sweeper", "stale message"])
def test_a_run_its_hard_limit_killed_with_a_cancel_pending_ends_cancelled(
    workspace: Workspace, settings: Any, ended_by: str
) -> None:
    """It ended FAILED with JOB_TIMED_OUT: the user who asked for the cancel saw a failure
    (before time limits, a lost worker's job with a cancel pending ended CANCELLED)."""
    settings.DEPOT_JOB_QUICK_SECONDS = 0
    start = timezone.now()
    killed = _killed_by_its_hard_limit(workspace, start)
    Job.objects.filter(pk=killed.pk).update(cancel_requested=True)
    with _clock(start + timedelta(seconds=13)), mock.patch.object(dispatch, "send") as send:
        if ended_by == "sweeper":
            assert jobs_sweep()["timed_out"] == 1
        else:
            runner.execute(killed.pk, redelivery=True)
    assert send.call_count == 0
    killed.refresh_from_db()
    assert (killed.state, killed.error, killed.lease_token) == (JobState.CANCELLED, None, "")
    assert ran == []
    # The event a cancel the handler saw records, and the hook for what the run left.
    assert _job_events(killed)[-1] == ("job.cancelled", None)
    assert Event.objects.get(type="job.cancelled").payload["state"] == JobState.CANCELLED
    assert abandoned == [(killed.pk, "JOB_CANCELLED")]
