"""Celery's soft time limit (SoftTimeLimitExceeded) lands wherever the worker's code is: in the
handler, or in the runner's own code (its hold or claim, the end's statement). Wherever it
lands once the job is ours, the job ends at once FAILED with JOB_TIMED_OUT and its kind's
on_abandon hook runs; before that (nothing claimed) the job is left as it was, and after its
end nothing is ended twice. The limit is raised by failpoints (domain/common/failpoints.py),
or by a handler in the middle of a statement.

These run with real commits: held runs and the one-statement claim and end happen only
outside a transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.db import connection, transaction
from django.db.backends.signals import connection_created
from psycopg.pq import TransactionStatus

from domain.accounts.models import Workspace
from domain.common.ids import global_id
from domain.jobs import quick, registry, runner, time_limits
from domain.jobs.context import JobContext
from domain.jobs.models import Event, Job, JobState, Lane
from domain.jobs.services import job_create
from project.celery import keep_on_the_main_thread

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="held runs are Postgres only"),
]

ran: list[int] = []
abandoned: list[tuple[int, str]] = []


@registry.register("test.soft_limits.ok", lane=Lane.INTERACTIVE, time_limit=7)
def _ok(ctx: JobContext) -> dict[str, Any]:
    ran.append(ctx.job.pk)
    return {"fine": True}


@registry.register("test.soft_limits.mid_statement", lane=Lane.INTERACTIVE, time_limit=7)
def _mid_statement(ctx: JobContext) -> None:
    """The limit lands while a statement of the handler's is on its way (psycopg stops waiting
    for its answer, the connection stays busy); then the handler cleans up, if told to, on
    that connection, as processing gives its asset back."""
    ran.append(ctx.job.pk)
    connection.ensure_connection()
    connection.connection.pgconn.send_query(b"SELECT pg_sleep(0.2)")
    try:
        raise SoftTimeLimitExceeded()
    except SoftTimeLimitExceeded:
        if ctx.parameters.get("clean_up"):
            Job.objects.filter(pk=ctx.job.pk).exists()  # refused: another command in progress
        raise


for _kind in ("test.soft_limits.ok", "test.soft_limits.mid_statement"):
    registry.on_abandon(_kind, lambda job, error: abandoned.append((job.pk, error["code"])))


@pytest.fixture(autouse=True)
def _reset() -> None:
    ran.clear()
    abandoned.clear()


@pytest.fixture(params=[True, False], ids=["held", "claimed"])
def held(request: pytest.FixtureRequest, settings: Any) -> bool:
    _run_held(settings, request.param)
    return bool(request.param)


def _run_held(settings: Any, held: bool) -> None:
    # Held for longer than any of these runs: the renewer never claims a held one meanwhile.
    settings.DEPOT_JOB_QUICK_SECONDS = 30 if held else 0


def _job(workspace: Workspace, kind: str, **parameters: Any) -> Job:
    with mock.patch("domain.jobs.dispatch.send"):
        return job_create(
            workspace_id=workspace.pk, kind=kind, parameters=parameters, created_by_id=None
        )


def _ended(job: Job) -> tuple[str, str | None, list[str]]:
    """The job's state, error code and events after job.queued."""
    job.refresh_from_db()
    types = Event.objects.filter(payload__jobId=global_id("Job", job.pk)).order_by("sequence")
    events = [t for t in types.values_list("type", flat=True) if t != "job.queued"]
    return job.state, job.error and job.error["code"], events


TIMED_OUT = (JobState.FAILED, "JOB_TIMED_OUT", ["job.started", "job.failed"])


@pytest.mark.parametrize(
    ("held", "point"),
    [
        (False, "job.after_claim"),  # a held job is not claimed before its handler
        (False, "job.before_handler"),
        (True, "job.before_handler"),
        (False, "job.before_end"),
        (True, "job.before_end"),
    ],
    ids=lambda value: {True: "held", False: "claimed"}.get(value, value),
)
def test_a_soft_limit_in_the_runners_own_code_ends_the_job_at_once(
    workspace: Workspace, settings: Any, held: bool, point: str
) -> None:
    """It escaped execute: the job stayed RUNNING (or its hold was let go) until its lease ran
    out, and the sweeper then sent it again or, past its deadline, ended it much later."""
    _run_held(settings, held)
    settings.DEPOT_FAILPOINTS = f"{point}=soft_limit"
    job = _job(workspace, "test.soft_limits.ok")
    runner.execute(job.pk, time_limit=37)
    assert _ended(job) == TIMED_OUT
    assert job.error == time_limits.soft_error(7)
    assert (job.lease_token, job.lease_expires_at) == ("", None)
    assert abandoned == [(job.pk, "JOB_TIMED_OUT")]


def test_a_soft_limit_after_the_end_ends_nothing_twice(
    workspace: Workspace, settings: Any, held: bool
) -> None:
    settings.DEPOT_FAILPOINTS = "job.after_end=soft_limit"
    job = _job(workspace, "test.soft_limits.ok")
    runner.execute(job.pk, time_limit=37)
    assert _ended(job) == (JobState.SUCCEEDED, None, ["job.started", "job.succeeded"])
    assert job.result == {"fine": True}
    assert abandoned == []


@pytest.mark.parametrize(
    ("held", "point"),
    [
        (False, "job.before_claim"),
        (True, "job.before_claim"),
        (True, "job.after_hold"),  # only a first delivery is held
    ],
    ids=lambda value: {True: "held", False: "claimed"}.get(value, value),
)
def test_a_soft_limit_before_the_job_is_ours_leaves_it_queued_and_unrun(
    workspace: Workspace, settings: Any, held: bool, point: str
) -> None:
    """Within the hold (which is then let go), it was taken for a failure to hold the job:
    the job was claimed and run after all, with its time already up."""
    _run_held(settings, held)
    settings.DEPOT_FAILPOINTS = f"{point}=soft_limit"
    job = _job(workspace, "test.soft_limits.ok")
    runner.execute(job.pk, time_limit=37)
    assert _ended(job) == (JobState.QUEUED, None, [])
    assert (job.attempts, ran, abandoned) == (0, [], [])
    # Nothing holds it: the next delivery runs it.
    settings.DEPOT_FAILPOINTS = ""
    runner.execute(job.pk, redelivery=True)
    assert _ended(job)[0] == JobState.SUCCEEDED


@pytest.fixture
def kept_connections() -> Iterator[None]:
    """As in a prefork child: the main thread keeps its connections from one job to the next."""
    connection_created.connect(keep_on_the_main_thread)
    try:
        yield
    finally:
        connection_created.disconnect(keep_on_the_main_thread)
        quick._threads.db.close()


def test_a_soft_limit_as_the_hold_returns_lets_the_row_go(
    workspace: Workspace, settings: Any, kept_connections: None
) -> None:
    """The hold it landed on was never let go: the job's row stayed locked, and the held
    connection in its transaction (the next job's hold with it), until Postgres' idle
    timeout, a lease later."""
    _run_held(settings, True)
    job = _job(workspace, "test.soft_limits.ok")
    hold = quick.hold

    def held_then_stopped(*args: Any) -> None:
        hold(*args)
        raise SoftTimeLimitExceeded()  # before execute knows of the hold

    with mock.patch.object(quick, "hold", side_effect=held_then_stopped):
        runner.execute(job.pk, time_limit=37)
    assert _ended(job) == (JobState.QUEUED, None, [])
    held = quick._threads.db.connection
    assert held.info.transaction_status == TransactionStatus.IDLE
    with transaction.atomic():  # nobody holds the row
        assert Job.objects.select_for_update(nowait=True).filter(pk=job.pk).exists()


@pytest.mark.parametrize("clean_up", [False, True], ids=["no clean-up", "clean-up on it"])
def test_a_soft_limit_in_the_middle_of_a_statement_still_ends_the_job(
    workspace: Workspace, held: bool, clean_up: bool
) -> None:
    """The end's statement was refused on the busy connection ("another command is already in
    progress"): the error escaped execute and the job stayed RUNNING (or, a clean-up failing
    there, the job ended INTERNAL_ERROR without its on_abandon hook, if at all)."""
    job = _job(workspace, "test.soft_limits.mid_statement", clean_up=clean_up)
    runner.execute(job.pk, time_limit=37)
    assert _ended(job) == TIMED_OUT
    assert abandoned == [(job.pk, "JOB_TIMED_OUT")]
    assert Job.objects.filter(pk=job.pk).exists()  # the connection serves again
