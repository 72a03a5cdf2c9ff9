"""The process's lease renewer: running jobs keep their lease; a job taken over is told so."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone

from domain.accounts.models import Workspace
from domain.jobs import registry, runner
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


def _job(workspace: Workspace, kind: str) -> Job:
    with mock.patch("domain.jobs.dispatch.send"):
        return job_create(workspace_id=workspace.pk, kind=kind, parameters={}, created_by_id=None)


@pytest.mark.django_db(transaction=True)
def test_concurrent_jobs_keep_their_leases_while_they_run(
    workspace: Workspace, settings: Any
) -> None:
    settings.DEPOT_JOB_LEASE_SECONDS = 3
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
    job = _job(workspace, "test.lease_stolen")
    started = timezone.now()
    runner.execute(job.pk)
    job.refresh_from_db()
    # It did not finish our way (the job is the other worker's now) and stopped early.
    assert job.state == JobState.RUNNING
    assert job.lease_token == "someone-else"
    assert job.pk not in seen
    assert timezone.now() - started < timedelta(seconds=4)


def test_lease_lost_is_what_the_handler_sees() -> None:
    context = JobContext(job=Job(pk=1), lease_token="t")
    context.lease_lost = True
    with pytest.raises(LeaseLost):
        context.check_cancelled()
