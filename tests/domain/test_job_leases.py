"""The process's lease renewer: running jobs keep their lease; a job taken over is told so."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from domain.accounts.models import Workspace
from domain.jobs import leases, registry, runner, transitions
from domain.jobs.context import JobContext
from domain.jobs.errors import LeaseLost
from domain.jobs.models import Job, JobState, Lane
from domain.jobs.services import job_create

seen: dict[int, dict[str, Any]] = {}


@registry.register("test.lease_probe", lane=Lane.INTERACTIVE)
def _probe(ctx: JobContext) -> dict[str, Any]:
    """Works past a third of its lease, noting the lease it saw first and last."""
    first = Job.objects.get(pk=ctx.job.pk).lease_expires_at
    time.sleep(1.6)  # the lease is 3 s: renewed after 1 s
    last = Job.objects.get(pk=ctx.job.pk).lease_expires_at
    seen[ctx.job.pk] = {"first": first, "last": last}
    connection.close()
    return {}


@registry.register("test.lease_stolen", lane=Lane.INTERACTIVE)
def _stolen(ctx: JobContext) -> None:
    # Another worker takes the job over (its lease token changes) while this one works.
    Job.objects.filter(pk=ctx.job.pk).update(lease_token="someone-else")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if ctx.lease_lost:  # set by the renewer, whose renewal found the token changed
            raise LeaseLost("taken over")
        time.sleep(0.05)
    seen[ctx.job.pk] = {"lease_lost": ctx.lease_lost}


@registry.register("test.lease_long", lane=Lane.INTERACTIVE)
def _long(ctx: JobContext) -> dict[str, Any]:
    """Works across three renewal rounds of a 3 s lease, noting the lease it saw first and last."""
    first = Job.objects.get(pk=ctx.job.pk).lease_expires_at
    time.sleep(2.5)
    last = Job.objects.get(pk=ctx.job.pk).lease_expires_at
    seen[ctx.job.pk] = {"first": first, "last": last, "lost": ctx.lease_lost}
    connection.close()
    return {}


def _job(workspace: Workspace, kind: str) -> Job:
    with mock.patch("domain.jobs.dispatch.send"):
        return job_create(workspace_id=workspace.pk, kind=kind, parameters={}, created_by_id=None)


@pytest.mark.django_db(transaction=True)
def test_concurrent_jobs_keep_their_leases_while_they_run(
    workspace: Workspace, settings: Any
) -> None:
    settings.DEPOT_JOB_LEASE_SECONDS = 3
    settings.DEPOT_JOB_QUICK_SECONDS = 0  # claimed at once, with a lease (not held a moment)
    jobs = [_job(workspace, "test.lease_probe") for _ in range(3)]

    def run(job_id: int) -> None:
        try:
            runner.execute(job_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job.pk,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for job in jobs:
        job.refresh_from_db()
        assert job.state == JobState.SUCCEEDED
        assert seen[job.pk]["last"] - seen[job.pk]["first"] >= timedelta(seconds=0.9)


@pytest.mark.django_db(transaction=True)
def test_a_job_taken_over_is_marked_lost_and_stops(workspace: Workspace, settings: Any) -> None:
    settings.DEPOT_JOB_LEASE_SECONDS = 3
    settings.DEPOT_JOB_QUICK_SECONDS = 0  # claimed at once, with a lease (not held a moment)
    job = _job(workspace, "test.lease_stolen")
    started = timezone.now()
    runner.execute(job.pk)
    job.refresh_from_db()
    # It did not finish our way (the job is the other worker's now) and stopped early.
    assert job.state == JobState.RUNNING
    assert job.lease_token == "someone-else"
    assert job.pk not in seen
    assert timezone.now() - started < timedelta(seconds=4)


@pytest.mark.django_db(transaction=True)
def test_a_renewal_that_fails_once_is_tried_again_while_the_lease_lasts(
    workspace: Workspace, settings: Any
) -> None:
    """One failed renewal (a database blip) stopped the job's renewals for good: its lease ran
    out under a live run, and the sweeper would have given the job to a second worker."""
    settings.DEPOT_JOB_LEASE_SECONDS = 3  # renewed every second
    settings.DEPOT_JOB_QUICK_SECONDS = 0
    job = _job(workspace, "test.lease_long")
    lease_duration = transitions.lease_duration
    failed: list[bool] = []

    def failing_once() -> timedelta:
        if threading.current_thread().name == "lease-renewer" and not failed:
            failed.append(True)
            raise OperationalError("server closed the connection unexpectedly")
        return lease_duration()

    with mock.patch.object(transitions, "lease_duration", failing_once):
        runner.execute(job.pk)
    job.refresh_from_db()
    assert failed
    assert job.state == JobState.SUCCEEDED
    assert seen[job.pk]["lost"] is False
    assert seen[job.pk]["last"] - seen[job.pk]["first"] >= timedelta(seconds=0.9)


def test_lease_lost_is_what_the_handler_sees() -> None:
    context = JobContext(job=Job(pk=1), lease_token="t")
    context.lease_lost = True
    with pytest.raises(LeaseLost):
        context.check_cancelled()


def test_the_renewer_is_woken_only_when_a_job_is_due_before_it_wakes(settings: Any) -> None:
    """One job after another: the renewer thread is not woken for each (a thread switch on
    every short job); it is for the first job, and for one due sooner than it would wake."""
    settings.DEPOT_JOB_LEASE_SECONDS = 30  # renewals every 10 s: none during this test
    renewer = leases._LeaseRenewer()
    notified = []
    real_notify = renewer._lock.notify

    def notify(n: int = 1) -> None:
        notified.append(n)
        real_notify(n)

    renewer._lock.notify = notify  # type: ignore[method-assign]

    def waiting_until() -> float | None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the thread goes back to waiting
            with renewer._lock:
                if renewer._wakes_at != 0.0:
                    return renewer._wakes_at
            time.sleep(0.001)
        raise AssertionError("the renewer never went back to waiting")

    contexts = [JobContext(job=Job(pk=n), lease_token="t") for n in range(5)]
    renewer.hold(contexts[0])  # starts the thread
    assert waiting_until() is not None
    for context in contexts[1:]:  # each due later than the first: nobody wakes the thread
        renewer.hold(context)
        renewer.release(context)
    assert notified == []
    renewer.release(contexts[0])
    with renewer._lock:  # as if it waited for the first job's renewal only now
        renewer._wakes_at = time.monotonic() + 60
    renewer.hold(contexts[1])  # due in 10 s, before it would wake: woken
    assert notified == [1]
    renewer.release(contexts[1])
