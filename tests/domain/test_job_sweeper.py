"""The sweeper's re-dispatches: a job nobody claims is sent again less and less often (a long
backlog is not flooded with copies of its messages), a lost message is still sent again, and a
job that was claimed is recovered at once when its worker dies."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from domain.accounts.models import Workspace
from domain.jobs import registry, runner
from domain.jobs.context import JobContext
from domain.jobs.models import Job, JobState, Lane
from domain.jobs.services import job_create
from domain.jobs.sweeper import jobs_sweep

SWEEP_EVERY = 15  # seconds, DEPOT_SWEEP_INTERVAL_SECONDS' default


@registry.register("test.sweeper.waits", lane=Lane.BULK)
def _never_run(ctx: JobContext) -> None:
    raise AssertionError("the sweeper only sends jobs; no worker runs them here")


@contextmanager
def _clock(at: datetime) -> Iterator[None]:
    """Everything that asks django.utils.timezone for the time gets `at`."""
    with mock.patch("django.utils.timezone.now", return_value=at):
        yield


def _job(workspace: Workspace) -> Job:
    with mock.patch("domain.jobs.dispatch.send"):
        return job_create(
            workspace_id=workspace.pk, kind="test.sweeper.waits", parameters={}, created_by_id=None
        )


def _sweeps(start: datetime, seconds: int) -> list[int]:
    """Sweep every SWEEP_EVERY seconds from `start` for `seconds`; the seconds (since `start`)
    at which a job was sent again."""
    sent = []
    with mock.patch("domain.jobs.dispatch.send") as send:
        for at in range(0, seconds + 1, SWEEP_EVERY):
            with _clock(start + timedelta(seconds=at)):
                jobs_sweep()
            sent += [at] * send.call_count
            send.reset_mock()
    return sent


@pytest.mark.django_db
def test_a_queued_job_nobody_claims_is_sent_again_less_and_less_often(
    workspace: Workspace, settings: Any
) -> None:
    """It was sent again every grace period (30 s) for as long as it waited: a backlog of
    thousands of bulk jobs put a copy of each job's message on the broker twice a minute."""
    settings.DEPOT_DISPATCH_GRACE_SECONDS = 30
    settings.DEPOT_REDISPATCH_MAX_SECONDS = 600
    start = timezone.now()
    with _clock(start):
        _job(workspace)
    sent = _sweeps(start, 3600)
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    # Twice the wait each time (to a sweep's precision), up to ten minutes.
    assert sent[0] == 30
    assert gaps[:4] == [60, 120, 240, 480]
    assert all(600 <= gap <= 600 + SWEEP_EVERY for gap in gaps[4:]), gaps
    # Still sent again, however long it waits: a lost message is not lost for good.
    assert sent[-1] >= 3600 - 600 - SWEEP_EVERY
    assert len(sent) <= 10  # it was 80


@pytest.mark.django_db
def test_a_job_claimed_after_many_sends_is_recovered_at_once_when_its_worker_dies(
    workspace: Workspace, settings: Any
) -> None:
    settings.DEPOT_DISPATCH_GRACE_SECONDS = 30
    settings.DEPOT_REDISPATCH_MAX_SECONDS = 600
    settings.DEPOT_JOB_LEASE_SECONDS = 60
    settings.DEPOT_JOB_QUICK_SECONDS = 0
    start = timezone.now()
    with _clock(start):
        job = _job(workspace)
    assert len(_sweeps(start, 1800)) > 3  # waited in a backlog: its next send is minutes away
    claimed_at = start + timedelta(seconds=1810)
    with _clock(claimed_at):
        assert runner.claim(job.pk) is not None
    # Its worker dies: the lease runs out a minute later, and the next sweep sends it again.
    sent = _sweeps(claimed_at + timedelta(seconds=61), 60)
    assert sent[0] == 0
    job.refresh_from_db()
    assert job.state == JobState.RUNNING


@pytest.mark.django_db
def test_the_sweepers_query_is_answered_from_an_index(workspace: Workspace) -> None:
    """A backlog's jobs that are not due yet are never read: the query is a range of an index."""
    _job(workspace)
    with CaptureQueriesContext(connection) as queries, mock.patch("domain.jobs.dispatch.send"):
        jobs_sweep()
    [due] = [q["sql"] for q in queries if "SKIP LOCKED" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the table is tiny here
        cursor.execute(f"EXPLAIN {due}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan" not in plan, plan
    assert "job_state_next_dispatch" in plan, plan


@pytest.mark.django_db
def test_jobs_written_by_the_release_before_the_schedule_are_swept(
    workspace: Workspace, settings: Any
) -> None:
    """During a rolling deploy, processes still on the release before migration 0003 insert
    and claim jobs knowing neither `redispatches` nor `next_dispatch_at`. Their INSERT failed
    (the column was NOT NULL with no default in the database), and a job they left without
    `next_dispatch_at` would never have been due."""
    settings.DEPOT_JOB_LEASE_SECONDS = 60
    # The Job model as that release has it (its state after migration 0002).
    old_apps = (
        MigrationExecutor(connection).loader.project_state(("jobs", "0002_idempotency_keys")).apps
    )
    OldJob = old_apps.get_model("jobs", "Job")
    assert "redispatches" not in {f.name for f in OldJob._meta.fields}
    start = timezone.now()
    queued = OldJob.objects.create(
        workspace_id=workspace.pk, kind="test.sweeper.waits", lane=Lane.BULK, state="QUEUED"
    )
    # Claimed by that release; its worker died.
    lost = OldJob.objects.create(
        workspace_id=workspace.pk,
        kind="test.sweeper.waits",
        lane=Lane.BULK,
        state="RUNNING",
        attempts=1,
        lease_token="old",
        lease_expires_at=start - timedelta(seconds=1),
    )
    assert Job.objects.get(pk=queued.pk).redispatches == 0
    assert Job.objects.get(pk=queued.pk).next_dispatch_at is None
    with _clock(start), mock.patch("domain.jobs.dispatch.send") as send:
        jobs_sweep()
    assert sorted(call.args[0] for call in send.call_args_list) == sorted([queued.pk, lost.pk])
    # From there on, they are on the schedule.
    assert Job.objects.get(pk=queued.pk).redispatches == 1
    with (
        _clock(start + timedelta(seconds=SWEEP_EVERY)),
        mock.patch("domain.jobs.dispatch.send") as send,
    ):
        jobs_sweep()
    assert send.call_count == 0


@pytest.mark.django_db
def test_the_jobs_migrations_are_cheap_on_a_big_table() -> None:
    """0003 added `redispatches` as a CHECKed column whose default Django dropped at once (a
    scan for the CHECK under ACCESS EXCLUSIVE; old code's INSERTs failing), backfilled and
    built the index in that lock."""
    if connection.vendor != "postgresql":
        pytest.skip("the statements checked are Postgres's")
    sql = {}
    for name in ("0003", "0004", "0005"):
        out = io.StringIO()
        call_command("sqlmigrate", "jobs", name, stdout=out)
        sql[name] = out.getvalue()
    added = sql["0003"] + sql["0004"]
    for costly in ("CHECK", "DROP DEFAULT", "Raw Python", "INDEX"):
        assert costly not in added, added
    assert '"redispatches" integer DEFAULT 0 NOT NULL' in added
    assert "BEGIN" not in sql["0005"], sql["0005"]
    assert 'CREATE INDEX CONCURRENTLY "job_state_next_dispatch"' in sql["0005"]
    assert 'DROP INDEX CONCURRENTLY IF EXISTS "job_state_dispatched"' in sql["0005"]
    assert sql["0005"].index("CREATE INDEX") < sql["0005"].index("DROP INDEX")
