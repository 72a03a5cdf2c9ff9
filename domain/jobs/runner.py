"""Running one job: claim it, keep its lease alive, call its handler, record how it ended.

Safe to call any number of times for the same job id (duplicate or redelivered broker messages,
the sweeper's re-dispatches): only one caller can hold the lease, and a finished job is skipped.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from domain.common.failpoints import failpoint
from domain.jobs import leases, quick, registry, time_limits, transitions
from domain.jobs.context import JobContext
from domain.jobs.errors import JobCancelled, JobFailed, JobTimedOut, LeaseLost
from domain.jobs.models import Job, JobState
from domain.jobs.services import job_event_payload, record_job_event
from realtime import publish

logger = logging.getLogger("depot.jobs")


def claim(
    job_id: int, deadline: datetime | None = None, token: str | None = None
) -> tuple[Job, str] | None:
    """Take the job if it is queued, or running under a lease that expired. Else None.
    `deadline`: when this run's hard time limit ends, if its worker enforces one. `token`: the
    lease token to take it with (a new one if not given)."""
    token = token or uuid.uuid4().hex
    if transitions.one_statement_possible():
        claimed = transitions.claim_in_one_statement(job_id, deadline, token)
        if claimed is not None:
            return claimed
        # Finished, running elsewhere, cancel pending, out of attempts or out of time: the
        # general way below sorts those out (one more round trip, off the common path).
    claimed = _claim_in_transaction(job_id, deadline, token)
    if claimed is None:
        # A stale message (a duplicate, a redelivery) of a job whose run was killed by its
        # time limit ends it, if the sweeper has not yet: it never runs it again. After the
        # claim's transaction, not in it: a failed try's back-off must commit (end_timed_out).
        end_timed_out(job_id)
    return claimed


@transaction.atomic
def _claim_in_transaction(
    job_id: int, deadline: datetime | None, token: str
) -> tuple[Job, str] | None:
    now = timezone.now()
    job = _take(job_id, token, now, deadline)
    if job is None:
        return None
    if job.cancel_requested:
        # A run was lost with a cancel pending: end it, and give back what that run had under
        # way (an asset left PROCESSING), as for any run that ends without its handler's word.
        if _finish(job, token, JobState.CANCELLED):
            registry.abandoned(job, time_limits.cancelled_error())
        return None
    if job.attempts > job.max_attempts:
        error = {"code": "TOO_MANY_ATTEMPTS", "message": "The job's worker was lost too often."}
        if _finish(job, token, JobState.FAILED, error=error):
            registry.abandoned(job, error)
        return None
    record_job_event(job, "job.started", attempt=job.attempts)
    return job, token


def _take(job_id: int, token: str, now: datetime, deadline: datetime | None) -> Job | None:
    """Take the job in the caller's transaction (one round trip); never one whose run was killed
    by its time limit (end_timed_out)."""
    sql, params = transitions.take_sql(
        token, now, job_id, deadline, transitions.not_outlived_condition()
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else transitions.job_from_row(row)


def _finish(
    job: Job,
    token: str,
    state: JobState,
    *,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    held: quick.HeldJob | None = None,
) -> bool:
    """Record the end of our run, unless another worker took the job over meanwhile. A job
    still held (domain/jobs/quick.py) records its start with it."""
    now = timezone.now()
    changes: dict[str, Any] = {
        "state": state.value,
        "finished_at": now,
        "updated_at": now,
        "lease_token": "",
        "lease_expires_at": None,
        "result": result,
        "error": error,
    }
    if state == JobState.SUCCEEDED and job.progress_total is not None:
        changes["progress_done"] = job.progress_total
    type = f"job.{state.lower()}"
    extra = {"error": error} if error else {}
    payload = job_event_payload(job, **extra) | {"state": state.value}
    if held is not None and held.end(changes, type, payload):
        return True
    if transitions.one_statement_possible():
        # The job's last event goes out from this thread (realtime.publish): a subscriber
        # waiting for the end gets it without a hand-off to the publisher thread.
        with publish.sent_from_this_thread():
            ended = transitions.finish_in_one_statement(job, token, changes, type, payload)
        if not ended:
            logger.warning("job %s ended here, but another worker had taken it over", job.pk)
        return ended
    with transaction.atomic():
        rows = Job.objects.filter(pk=job.pk, state=JobState.RUNNING, lease_token=token).update(
            **changes
        )
        if not rows:
            logger.warning("job %s ended here, but another worker had taken it over", job.pk)
            return False
        # The row is now what we just wrote (the lease token guarded it): no need to read it back.
        for name, value in changes.items():
            setattr(job, name, value)
        record_job_event(job, type, **extra)
        return True


def end_timed_out(job_id: int) -> bool:
    """End FAILED with JOB_TIMED_OUT a job whose worker was lost after its run's hard deadline
    (domain/jobs/time_limits.py): Celery killed it; its handler could not clean up, so the
    kind's on_abandon hook does (an asset being processed fails with the same code). A job
    whose cancel was pending ends CANCELLED instead, with job.cancelled as a cancel the handler
    saw (and the hook, given time_limits.CANCELLED). False if the job is not such a job (or
    another sweeper or worker has it locked).

    An end that fails (the hook raising, mostly) is rolled back and the job waits
    (time_limits.cleanup_retry_at) before the sweeper tries again; then this raises what made
    it fail. So a hook that keeps failing is neither tried at every sweep nor fills the sweep's
    batch ahead of other killed runs. The CLEANUP_TRIES-th failure ends the job without the
    hook, FAILED with JOB_CLEANUP_FAILED: the end is not lost, and what the hook should have
    given back waits for a retry of the job."""
    now = timezone.now()
    with transaction.atomic():
        job = (
            Job.objects.select_for_update(skip_locked=True)
            .filter(time_limits.outlived_its_run(now), pk=job_id)
            .first()
        )
        if job is None:
            return False
        logger.error("job %s (%s) was stopped by its hard time limit", job.pk, job.kind)
        token = job.lease_token
        try:
            with transaction.atomic():
                return _end_killed_run(job, token)
        except Exception as error:
            failure = error
        # The end and the hook's writes are rolled back; the row, still locked, is as it was
        # (the attempt to end it changed the object only).
        job.refresh_from_db()
        # Until then, a killed run's schedule columns are free: its claim set them (now past,
        # and 0), and the sweeper sends no killed run again.
        failed = job.redispatches + 1
        if failed >= time_limits.CLEANUP_TRIES:
            logger.error(
                "job %s (%s): ending it failed %d times; ending it without its on_abandon hook",
                job.pk,
                job.kind,
                failed,
                exc_info=failure,
            )
            gave_up = time_limits.cleanup_failed_error(failed)
            return _finish(job, token, JobState.FAILED, error=gave_up)
        retry_at = time_limits.cleanup_retry_at(now, failed)
        Job.objects.filter(pk=job.pk).update(redispatches=failed, next_dispatch_at=retry_at)
        logger.warning(
            "job %s (%s): ending it failed (try %d of %d); next try after %s",
            job.pk,
            job.kind,
            failed,
            time_limits.CLEANUP_TRIES,
            retry_at.isoformat(),
        )
    raise failure


def _end_killed_run(job: Job, token: str) -> bool:
    if job.cancel_requested:
        # The user asked for the cancel before the limit struck: that is the end they wait
        # for (a lost worker with a cancel pending ends so too, at the claim).
        ended = _finish(job, token, JobState.CANCELLED)
        if ended:
            registry.abandoned(job, time_limits.cancelled_error())
        return ended
    error = time_limits.hard_error()
    ended = _finish(job, token, JobState.FAILED, error=error)
    if ended:
        registry.abandoned(job, error)
    return ended


@dataclass
class _Run:
    """What execute knows of its run, for a soft time limit wherever it lands."""

    job_id: int
    # The lease token a claim of this run takes (a held run's too, when claimed): a job running
    # under it is ours, whatever became of the statement that claimed it.
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    held: quick.HeldJob | None = None
    tried_to_hold: bool = False


def execute(job_id: int, *, redelivery: bool = False, time_limit: float | None = None) -> None:
    """Run the job, if it is ours to run. A first delivery may be held rather than claimed
    (domain/jobs/quick.py); a redelivery (the sweeper's, the broker's) is always claimed.
    `time_limit`: the seconds after which the worker kills this run (Celery's hard limit, from
    the message), if it enforces one.

    Celery's soft limit (JobTimedOut) may land anywhere: in the handler, or in the runner's
    own code (the hold, the claim's statement, the end's). Wherever it lands, the run ends
    at once (_end_stopped_run), before a held job's row is let go."""
    # Connection hygiene around tasks is the task's job (tasks/jobs.py), not ours.
    deadline = None if time_limit is None else timezone.now() + timedelta(seconds=time_limit)
    run = _Run(job_id)
    try:
        failpoint("job.before_claim")
        if not quick.possible(redelivery=redelivery):
            _claim_and_run(run, deadline)
            return
        run.tried_to_hold = True
        run.held = quick.hold(job_id, deadline, run.token)
        if run.held is None:
            _claim_and_run(run, deadline)
        else:
            _run(run.held.job, run.token, run.held)
    except JobTimedOut:
        _end_stopped_run(run)
    finally:
        if run.held is not None:
            run.held.let_go()  # only if something escaped before its end
        if run.tried_to_hold:
            quick.done_with_connection()


def _end_stopped_run(run: _Run) -> None:
    """End FAILED with JOB_TIMED_OUT, with its kind's on_abandon hook, a run its soft time
    limit stopped, if the job is still ours: held, or running under our lease token. If not,
    the limit landed before our claim committed (the job is as it was: QUEUED, the sweeper
    sends it again) or after our end did (or another worker took the job over): nothing is
    ended twice."""
    logger.warning("job %s reached its time limit", run.job_id)
    _close_if_interrupted()
    if run.held is not None and run.held.held:
        job: Job | None = run.held.job
    else:
        job = Job.objects.filter(
            pk=run.job_id, state=JobState.RUNNING, lease_token=run.token
        ).first()
    if job is None:
        logger.info("job %s: not ours when its time ran out; nothing to end", run.job_id)
        return
    error = time_limits.soft_error(time_limits.of(job.kind).soft)
    # What the handler did not clean up on its way out, the kind's on_abandon hook does, with
    # the job's end. The end is conditional (held, or our lease token): one that committed
    # meanwhile, or a claim that did not, makes it write nothing.
    with transaction.atomic():
        if _finish(job, run.token, JobState.FAILED, error=error, held=run.held):
            registry.abandoned(job, error)


def _close_if_interrupted() -> None:
    """The soft limit may have landed while one of this thread's statements was on its way:
    psycopg then stops waiting for its answer (only KeyboardInterrupt makes it cancel one),
    and the connection stays busy, refusing every statement after. Close such a connection;
    the next statement opens another, and whatever became of that one, the end that follows
    only writes if the job is still ours."""
    if connection.connection is not None and not connection.is_usable():
        logger.warning("the connection was interrupted mid-statement; closing it")
        connection.close()


def _claim_and_run(run: _Run, deadline: datetime | None) -> None:
    claimed = claim(run.job_id, deadline, run.token)
    if claimed is None:
        logger.info("job %s: nothing to do (finished, running elsewhere, or missing)", run.job_id)
        return
    failpoint("job.after_claim")
    _run(*claimed)


def _run(job: Job, token: str, held: quick.HeldJob | None = None) -> None:
    try:
        kind = registry.get(job.kind)
    except KeyError:
        error = {"code": "UNKNOWN_KIND", "message": job.kind}
        _finish(job, token, JobState.FAILED, error=error, held=held)
        return
    context = JobContext(job=job, lease_token=token, held=held)
    with leases.LeaseKeeper(context):
        failpoint("job.before_handler")
        try:
            result = kind.handler(context) or {}
            # Checked here, with the handler's errors: a result the end cannot store failed
            # the end's statement, and the job went back to the queue to run (and repeat its
            # side effects) again and again until it was out of attempts.
            json.dumps(result)
        except LeaseLost:
            logger.warning("job %s was taken over by another worker; stopping", job.pk)
            return
        except JobCancelled:
            _finish(job, token, JobState.CANCELLED, held=held)
            return
        except JobFailed as failure:
            error = {"code": failure.code, "message": failure.message}
            _finish(job, token, JobState.FAILED, error=error, held=held)
            return
        except JobTimedOut:
            raise  # execute ends the run, as wherever else the limit lands
        except Exception as crash:
            if _raised_by_the_time_limit(crash):
                # The handler's clean-up failed on its way out of the soft limit (most likely
                # on the connection the limit interrupted): the kind's on_abandon hook does it.
                logger.warning(
                    "job %s: cleaning up at its time limit failed", job.pk, exc_info=True
                )
                raise JobTimedOut() from crash
            reference = uuid.uuid4().hex[:12]
            logger.exception("job %s (%s) crashed [ref %s]", job.pk, job.kind, reference)
            error = {"code": "INTERNAL_ERROR", "message": f"Unexpected error (ref {reference})."}
            _finish(job, token, JobState.FAILED, error=error, held=held)
            return
    failpoint("job.before_end")
    _finish(job, token, JobState.SUCCEEDED, result=result, held=held)
    failpoint("job.after_end")


def _raised_by_the_time_limit(error: BaseException) -> bool:
    """Whether the soft limit (JobTimedOut) is among what led to `error`."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, JobTimedOut):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False
