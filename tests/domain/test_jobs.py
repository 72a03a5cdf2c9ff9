from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from domain.accounts.actor import Actor
from domain.accounts.models import User, Workspace
from domain.common.errors import Forbidden, InvalidState
from domain.jobs import registry, runner
from domain.jobs.context import JobContext
from domain.jobs.errors import IdempotencyConflict, JobFailed
from domain.jobs.models import Event, Job, JobState, Lane
from domain.jobs.services import job_cancel, job_create, job_retry
from domain.jobs.sweeper import jobs_sweep

calls: list[str] = []


@registry.register("test.ok", lane=Lane.BULK)
def _ok(ctx: JobContext) -> dict[str, Any]:
    for step in range(3):
        ctx.progress(step + 1, 3, "working")
    calls.append("ok")
    return {"steps": 3}


@registry.register("test.fails", lane=Lane.INTERACTIVE)
def _fails(ctx: JobContext) -> None:
    raise JobFailed("Not today.", code="NOT_TODAY")


@registry.register("test.crashes", lane=Lane.INTERACTIVE)
def _crashes(ctx: JobContext) -> None:
    raise ZeroDivisionError("secret internals")


@registry.register("test.unstorable_result", lane=Lane.INTERACTIVE)
def _unstorable(ctx: JobContext) -> dict[str, Any]:
    calls.append("unstorable")
    return {"at": timezone.now()}  # no JSON for a datetime


cancel_seen = threading.Event()


@registry.register("test.waits_for_cancel", lane=Lane.INTERACTIVE)
def _waits(ctx: JobContext) -> None:
    ctx.job.refresh_from_db()
    while True:
        ctx.check_cancelled()
        cancel_seen.wait(0.05)


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


def _job(workspace: Workspace, kind: str = "test.ok", **kwargs: Any) -> Job:
    with mock.patch("domain.jobs.dispatch.send"):
        return job_create(
            workspace_id=workspace.pk, kind=kind, parameters={}, created_by_id=None, **kwargs
        )


def _types(workspace: Workspace) -> list[str]:
    return list(
        Event.objects.filter(workspace=workspace, type__startswith="job.")
        .order_by("sequence")
        .values_list("type", flat=True)
    )


@pytest.mark.django_db
def test_a_job_runs_reports_progress_and_records_each_state(workspace: Workspace) -> None:
    job = _job(workspace)
    assert job.lane == Lane.BULK
    runner.execute(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.result == {"steps": 3}
    assert (job.progress_done, job.progress_total, job.progress_stage) == (3, 3, "working")
    assert job.attempts == 1
    assert _types(workspace) == ["job.queued", "job.started", "job.succeeded"]


@pytest.mark.django_db
def test_running_a_finished_job_again_does_nothing(workspace: Workspace) -> None:
    job = _job(workspace)
    runner.execute(job.pk)
    runner.execute(job.pk)
    assert calls == ["ok"]
    assert _types(workspace).count("job.succeeded") == 1


@pytest.mark.django_db
def test_only_one_claim_wins(workspace: Workspace) -> None:
    job = _job(workspace)
    first = runner.claim(job.pk)
    second = runner.claim(job.pk)
    assert first is not None
    assert second is None


@pytest.mark.django_db
def test_an_expired_lease_is_taken_over_and_the_old_runner_cannot_finish(
    workspace: Workspace,
) -> None:
    job = _job(workspace)
    claimed = runner.claim(job.pk)
    assert claimed is not None
    _, old_token = claimed
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    runner.execute(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.attempts == 2
    assert runner._finish(job, old_token, JobState.FAILED) is False
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED


@pytest.mark.django_db
def test_a_job_whose_workers_keep_dying_fails_after_max_attempts(workspace: Workspace) -> None:
    job = _job(workspace)
    Job.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING,
        attempts=job.max_attempts,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    runner.execute(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error is not None
    assert job.error["code"] == "TOO_MANY_ATTEMPTS"
    assert calls == []


@pytest.mark.django_db
def test_an_expected_failure_keeps_its_code(workspace: Workspace) -> None:
    job = _job(workspace, kind="test.fails")
    runner.execute(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error == {"code": "NOT_TODAY", "message": "Not today."}


@pytest.mark.django_db
def test_a_crash_is_recorded_without_its_internals(workspace: Workspace) -> None:
    job = _job(workspace, kind="test.crashes")
    runner.execute(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error is not None
    assert job.error["code"] == "INTERNAL_ERROR"
    assert "secret" not in job.error["message"]
    assert "ref" in job.error["message"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("quick", [True, False], ids=["held", "claimed"])
def test_a_result_that_cannot_be_stored_fails_the_job_once(
    workspace: Workspace, settings: Any, quick: bool
) -> None:
    """It failed the end's statement: the job went back to the queue and its handler ran again
    at each delivery until the job was out of attempts."""
    settings.DEPOT_JOB_QUICK_SECONDS = 0.05 if quick else 0
    job = _job(workspace, kind="test.unstorable_result")
    runner.execute(job.pk)
    job.refresh_from_db()
    assert (job.state, job.error and job.error["code"]) == (JobState.FAILED, "INTERNAL_ERROR")
    runner.execute(job.pk, redelivery=True)  # a redelivery finds it finished
    assert calls == ["unstorable"]


@pytest.mark.django_db
def test_cancelling_a_queued_job_is_immediate(workspace: Workspace, owner: User) -> None:
    job = _job(workspace)
    job_cancel(job_id=job.pk, actor=Actor(user=owner))
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    runner.execute(job.pk)
    assert calls == []
    with pytest.raises(InvalidState):
        job_cancel(job_id=job.pk, actor=Actor(user=owner))


@pytest.mark.django_db(transaction=True)
def test_a_running_job_stops_at_its_next_check_when_cancelled(
    workspace: Workspace, owner: User
) -> None:
    job = _job(workspace, kind="test.waits_for_cancel")

    def run() -> None:
        runner.execute(job.pk)
        connection.close()

    running = threading.Thread(target=run)
    running.start()
    deadline = timezone.now() + timedelta(seconds=10)
    while Job.objects.get(pk=job.pk).state != JobState.RUNNING:
        assert timezone.now() < deadline
    job_cancel(job_id=job.pk, actor=Actor(user=owner))
    running.join(10)
    assert not running.is_alive()
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert _types(workspace)[-2:] == ["job.cancel_requested", "job.cancelled"]


@pytest.mark.django_db
def test_retry_runs_a_failed_job_again(workspace: Workspace, owner: User) -> None:
    job = _job(workspace, kind="test.fails")
    runner.execute(job.pk)
    with mock.patch("domain.jobs.dispatch.send") as send:
        from django.test import TestCase

        with TestCase.captureOnCommitCallbacks(execute=True):
            job_retry(job_id=job.pk, actor=Actor(user=owner))
    send.assert_called_once_with(job.pk, job.lane, job.kind)
    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert job.error is None
    with pytest.raises(InvalidState):
        job_retry(job_id=job.pk, actor=Actor(user=owner))


@pytest.mark.django_db
def test_a_viewer_cannot_cancel(workspace: Workspace, viewer_user: User) -> None:
    job = _job(workspace)
    with pytest.raises(Forbidden):
        job_cancel(job_id=job.pk, actor=Actor(user=viewer_user))
    job.refresh_from_db()
    assert job.state == JobState.QUEUED


@pytest.mark.django_db
def test_an_idempotency_key_returns_the_first_job(workspace: Workspace) -> None:
    first = _job(workspace, idempotency_key="k1")
    again = _job(workspace, idempotency_key="k1")
    assert again.pk == first.pk
    assert Job.objects.filter(workspace=workspace).count() == 1
    with pytest.raises(IdempotencyConflict):
        _job(workspace, kind="test.fails", idempotency_key="k1")


@pytest.mark.django_db
def test_a_repeated_key_writes_nothing_and_takes_no_sequence(workspace: Workspace) -> None:
    with CaptureQueriesContext(connection) as queries:
        first = _job(workspace, idempotency_key="k1")
    # The job and job.queued in one statement, key and all: no lookup first, no savepoint.
    assert [q["sql"].split(" ", 3)[:3] for q in queries] == [["WITH", "j", "AS"]]
    events = list(Event.objects.values_list("type", "sequence"))
    with mock.patch("domain.jobs.dispatch.send") as send:
        assert _job(workspace, idempotency_key="k1").pk == first.pk
    assert list(Event.objects.values_list("type", "sequence")) == events
    assert send.call_count == 0
    # Another workspace may use the same key for its own job.
    other = Workspace.objects.create(name="Other", slug="other")
    assert _job(other, idempotency_key="k1").pk != first.pk


@pytest.mark.django_db(transaction=True)
def test_concurrent_creations_with_one_key_make_one_job(workspace: Workspace) -> None:
    barrier = threading.Barrier(4)
    made: list[int] = []

    def create() -> None:
        barrier.wait()
        try:
            job = job_create(
                workspace_id=workspace.pk,
                kind="test.ok",
                parameters={},
                created_by_id=None,
                idempotency_key="same",
            )
            made.append(job.pk)
        finally:
            connection.close()

    with mock.patch("domain.jobs.dispatch.send") as send:
        threads = [threading.Thread(target=create) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(made) == 4
    assert len(set(made)) == 1
    assert Job.objects.filter(workspace=workspace).count() == 1
    assert Event.objects.filter(type="job.queued").count() == 1
    assert send.call_count == 1


@pytest.mark.django_db
def test_dispatch_happens_after_commit(
    workspace: Workspace, django_capture_on_commit_callbacks: Any
) -> None:
    with (
        mock.patch("domain.jobs.dispatch.send") as send,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        job = job_create(
            workspace_id=workspace.pk, kind="test.ok", parameters={}, created_by_id=None
        )
        assert send.call_count == 0
    assert len(callbacks) >= 1
    send.assert_called_once_with(job.pk, Lane.BULK.value, job.kind)


@pytest.mark.django_db
def test_the_sweeper_redispatches_lost_and_orphaned_jobs_once(
    workspace: Workspace, settings: Any
) -> None:
    settings.DEPOT_DISPATCH_GRACE_SECONDS = 5
    long_ago = timezone.now() - timedelta(minutes=5)
    lost = _job(workspace)
    orphaned = _job(workspace)
    fresh = _job(workspace)
    running = _job(workspace)
    Job.objects.filter(pk=lost.pk).update(next_dispatch_at=long_ago)
    Job.objects.filter(pk=orphaned.pk).update(
        state=JobState.RUNNING, next_dispatch_at=long_ago, lease_expires_at=long_ago
    )
    Job.objects.filter(pk=running.pk).update(
        state=JobState.RUNNING,
        next_dispatch_at=long_ago,
        lease_expires_at=timezone.now() + timedelta(minutes=1),
    )
    with mock.patch("domain.jobs.dispatch.send") as send:
        jobs_sweep()
        jobs_sweep()
    sent = sorted(call.args[0] for call in send.call_args_list)
    assert sent == sorted([lost.pk, orphaned.pk])
    assert fresh.pk not in sent
