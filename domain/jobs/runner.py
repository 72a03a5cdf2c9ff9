"""Running one job: claim it, keep its lease alive, call its handler, record how it ended.

Safe to call any number of times for the same job id (duplicate or redelivered broker messages,
the sweeper's re-dispatches): only one caller can hold the lease, and a finished job is skipped.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone

from domain.common.ids import global_id
from domain.jobs import events, registry
from domain.jobs.context import JobContext
from domain.jobs.errors import JobCancelled, JobFailed, LeaseLost
from domain.jobs.models import Event, EventCounter, Job, JobState
from domain.jobs.services import job_event_payload, record_job_event

logger = logging.getLogger("depot.jobs")


def _lease() -> timedelta:
    return timedelta(seconds=settings.DEPOT_JOB_LEASE_SECONDS)


def claim(job_id: int) -> tuple[Job, str] | None:
    """Take the job if it is queued, or running under a lease that expired. Else None."""
    if _one_statement_possible():
        claimed = _claim_in_one_statement(job_id)
        if claimed is not None:
            return claimed
        # Finished, running elsewhere, cancel pending or out of attempts: the general way
        # below sorts those out (one more round trip, off the common path).
    return _claim_in_transaction(job_id)


@transaction.atomic
def _claim_in_transaction(job_id: int) -> tuple[Job, str] | None:
    now = timezone.now()
    token = uuid.uuid4().hex
    job = _take(job_id, token, now)
    if job is None:
        return None
    if job.cancel_requested:
        _finish(job, token, JobState.CANCELLED)
        return None
    if job.attempts > job.max_attempts:
        error = {"code": "TOO_MANY_ATTEMPTS", "message": "The job's worker was lost too often."}
        _finish(job, token, JobState.FAILED, error=error)
        return None
    record_job_event(job, "job.started", attempt=job.attempts)
    return job, token


def _field(name: str) -> Field[Any, Any]:
    return cast("Field[Any, Any]", Job._meta.get_field(name))


def _column(name: str) -> str:
    return connection.ops.quote_name(str(_field(name).column))


def _value(name: str, raw: Any) -> Any:
    return _field(name).get_db_prep_save(raw, connection)


def _take_sql(
    token: str, now: datetime, job_id: int, extra_condition: str = ""
) -> tuple[str, list]:
    """The conditional UPDATE that takes the job, returning the whole row as it is now."""
    quote = connection.ops.quote_name
    returning = ", ".join(quote(str(f.column)) for f in Job._meta.concrete_fields)
    state, expires = _column("state"), _column("lease_expires_at")
    sql = (
        f"UPDATE {quote(Job._meta.db_table)} SET {state} = %s, "  # noqa: S608 (our names)
        f"{_column('lease_token')} = %s, {expires} = %s, "
        f"{_column('attempts')} = {_column('attempts')} + 1, {_column('started_at')} = %s, "
        f"{_column('updated_at')} = %s "
        f"WHERE {_column('id')} = %s AND ({state} = %s OR ({state} = %s AND {expires} < %s))"
        f"{extra_condition} RETURNING {returning}"
    )
    params = [
        JobState.RUNNING.value,
        token,
        _value("lease_expires_at", now + _lease()),
        _value("started_at", now),
        _value("updated_at", now),
        job_id,
        JobState.QUEUED.value,
        JobState.RUNNING.value,
        _value("lease_expires_at", now),
    ]
    return sql, params


def _take(job_id: int, token: str, now: datetime) -> Job | None:
    """Take the job in the caller's transaction (one round trip)."""
    sql, params = _take_sql(token, now, job_id)
    taken = list(Job.objects.raw(sql, params))
    return taken[0] if taken else None


# --- one statement per transition (Postgres) ---------------------------------------------------
#
# A no-op job's two transitions (claim with job.started, finish with job.succeeded) were each
# BEGIN, the job UPDATE, the event statement and COMMIT: four round trips and Django's atomic()
# around them, 3.9-4.4 ms of a ~20 ms mutation-to-client loop (bench/realtime, BENCH_TRACE=1).
# On Postgres, outside any transaction, each transition is one statement instead: the job
# UPDATE, the workspace's counter and the event INSERT as data-modifying CTEs, which Postgres
# runs as one transaction (autocommit). Same guarantees as the general way: the counter row is
# locked by the statement until it commits, so sequences still follow commit order; the event
# commits with the state change or not at all; the live publish still happens after commit.
# The counter is taken by an upsert, so a workspace without its counter row needs no second
# statement. Anything unusual (a cancel pending, out of attempts, not ours to take) falls back
# to the general way in a transaction.


def _one_statement_possible() -> bool:
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def _counter_and_event_sql(source: str, type_sql: str, payload_sql: str) -> str:
    """CTEs `c` (the workspace's next sequence, locked till commit) and `e` (the event), for the
    one row of `source` (a CTE with workspace_id)."""
    counters = EventCounter._meta.db_table
    events = Event._meta.db_table
    return (
        f"c AS (INSERT INTO {counters} (workspace_id, last_sequence, pruned_through) "  # noqa: S608
        f"SELECT workspace_id, 1, 0 FROM {source} "
        f"ON CONFLICT (workspace_id) DO UPDATE SET last_sequence = {counters}.last_sequence + 1 "
        "RETURNING workspace_id, last_sequence), "
        f"e AS (INSERT INTO {events} (workspace_id, sequence, type, payload, created_at) "
        f"SELECT c.workspace_id, c.last_sequence, {type_sql}, {payload_sql}, %s "
        f"FROM c CROSS JOIN {source} RETURNING id, sequence)"
    )


def _claim_in_one_statement(job_id: int) -> tuple[Job, str] | None:
    now = timezone.now()
    token = uuid.uuid4().hex
    # Only the plain case: no cancel pending, an attempt left (else the general way).
    guard = (
        f" AND NOT {_column('cancel_requested')}"
        f" AND {_column('attempts')} < {_column('max_attempts')}"
    )
    take, params = _take_sql(token, now, job_id, guard)
    # job.started's payload is job_event_payload(job, attempt=...): what the row decides (kind,
    # attempts) is merged in SQL; the Python side below builds the same dict to publish.
    base = {"jobId": global_id("Job", job_id), "state": JobState.RUNNING.value}
    sql = (
        f"WITH j AS ({take}), "  # noqa: S608 (our names)
        + _counter_and_event_sql(
            "j", "%s", "%s::jsonb || jsonb_build_object('kind', j.kind, 'attempt', j.attempts)"
        )
        + " SELECT j.*, e.id AS event_id, e.sequence AS event_sequence FROM j CROSS JOIN e"
    )
    params += ["job.started", json.dumps(base), now]
    taken = list(Job.objects.raw(sql, params))
    if not taken:
        return None
    job = taken[0]
    record_job_event_committed(
        job,
        "job.started",
        event_id=job.event_id,  # type: ignore[attr-defined]
        sequence=job.event_sequence,  # type: ignore[attr-defined]
        created_at=now,
        attempt=job.attempts,
    )
    return job, token


def _finish_in_one_statement(
    job: Job, token: str, changes: dict[str, Any], type: str, payload: dict[str, Any]
) -> bool:
    quote = connection.ops.quote_name
    now = changes["updated_at"]
    assignments = ", ".join(f"{_column(name)} = %s" for name in changes)
    values = [_value(name, raw) for name, raw in changes.items()]
    update = (
        f"UPDATE {quote(Job._meta.db_table)} SET {assignments} "  # noqa: S608 (our names)
        f"WHERE {_column('id')} = %s AND {_column('state')} = %s "
        f"AND {_column('lease_token')} = %s RETURNING {_column('workspace')}"
    )
    sql = (
        f"WITH j AS ({update}), "  # noqa: S608 (our names)
        + _counter_and_event_sql("j", "%s", "%s")
        + " SELECT e.id, e.sequence FROM e"
    )
    params = [
        *values,
        job.pk,
        JobState.RUNNING.value,
        token,
        type,
        Event._meta.get_field("payload").get_db_prep_save(payload, connection),
        now,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    for name, raw in changes.items():
        setattr(job, name, raw)
    events.announce_committed(
        Event(
            id=row[0],
            workspace_id=job.workspace_id,
            sequence=row[1],
            type=type,
            payload=payload,
            created_at=now,
        ),
        job_id=job.pk,
    )
    return True


def record_job_event_committed(
    job: Job, type: str, *, event_id: int, sequence: int, created_at: datetime, **extra: Any
) -> None:
    """Publish an event a one-statement transition already committed."""
    events.announce_committed(
        Event(
            id=event_id,
            workspace_id=job.workspace_id,
            sequence=sequence,
            type=type,
            payload=job_event_payload(job, **extra),
            created_at=created_at,
        ),
        job_id=job.pk,
    )


def _finish(
    job: Job,
    token: str,
    state: JobState,
    *,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> bool:
    """Record the end of our run, unless another worker took the job over meanwhile."""
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
    if _one_statement_possible():
        payload = job_event_payload(job, **extra) | {"state": state.value}
        return _finish_in_one_statement(job, token, changes, type, payload)
    with transaction.atomic():
        ended = Job.objects.filter(pk=job.pk, state=JobState.RUNNING, lease_token=token).update(
            **changes
        )
        if not ended:
            return False
        # The row is now what we just wrote (the lease token guarded it): no need to read it back.
        for name, value in changes.items():
            setattr(job, name, value)
        record_job_event(job, type, **extra)
        return True


class LeaseKeeper:
    """Renews the job's lease from a side thread while the handler works, however slow its
    steps. The thread is the process's lease renewer, started once: a job does not pay for a
    thread start and join (a no-op job's whole run is a few milliseconds)."""

    def __init__(self, context: JobContext) -> None:
        self.context = context

    def __enter__(self) -> LeaseKeeper:
        _renewer().hold(self.context)
        return self

    def __exit__(self, *exc: object) -> None:
        _renewer().release(self.context)


class _LeaseRenewer:
    """Every third of a lease, renews the lease of each job held; one that is no longer ours is
    marked lost (the handler stops at its next progress or cancel check) and dropped."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._held: dict[int, tuple[JobContext, float]] = {}  # id(context) -> (context, due)
        self._thread: threading.Thread | None = None

    def hold(self, context: JobContext) -> None:
        with self._lock:
            self._held[id(context)] = (context, time.monotonic() + _renew_every())
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lease-renewer", daemon=True)
                self._thread.start()
            self._lock.notify()

    def release(self, context: JobContext) -> None:
        with self._lock:
            self._held.pop(id(context), None)

    def _due(self) -> list[JobContext]:
        with self._lock:
            while True:
                now = time.monotonic()
                due = [context for context, at in self._held.values() if at <= now]
                if due:
                    for context in due:
                        self._held[id(context)] = (context, now + _renew_every())
                    return due
                soonest = min((at for _, at in self._held.values()), default=None)
                self._lock.wait(None if soonest is None else soonest - now)

    def _still_held(self, context: JobContext) -> bool:
        with self._lock:
            return id(context) in self._held

    def _run(self) -> None:
        while True:
            due = self._due()
            try:
                for context in due:
                    if self._still_held(context):
                        self._renew(context)
            finally:
                connection.close()

    def _renew(self, context: JobContext) -> None:
        try:
            renewed = Job.objects.filter(
                pk=context.job.pk, state=JobState.RUNNING, lease_token=context.lease_token
            ).update(lease_expires_at=timezone.now() + _lease())
        except Exception:
            logger.exception("renewing the lease of job %s failed", context.job.pk)
            self.release(context)
            return
        if not renewed:
            context.lease_lost = True
            self.release(context)


def _renew_every() -> float:
    return float(settings.DEPOT_JOB_LEASE_SECONDS) / 3


_lease_renewer: _LeaseRenewer | None = None
_lease_renewer_lock = threading.Lock()


def _renewer() -> _LeaseRenewer:
    global _lease_renewer
    if _lease_renewer is None:
        with _lease_renewer_lock:
            if _lease_renewer is None:
                _lease_renewer = _LeaseRenewer()
    return _lease_renewer


def _forget_renewer_after_fork() -> None:
    # A forked child (a Celery prefork worker) has the object but not the thread.
    global _lease_renewer, _lease_renewer_lock
    _lease_renewer = None
    _lease_renewer_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_renewer_after_fork)


def execute(job_id: int) -> None:
    # Connection hygiene around tasks is the task's job (tasks/jobs.py), not ours.
    claimed = claim(job_id)
    if claimed is None:
        logger.info("job %s: nothing to do (finished, running elsewhere, or missing)", job_id)
        return
    job, token = claimed
    try:
        kind = registry.get(job.kind)
    except KeyError:
        _finish(job, token, JobState.FAILED, error={"code": "UNKNOWN_KIND", "message": job.kind})
        return
    context = JobContext(job=job, lease_token=token)
    with LeaseKeeper(context):
        try:
            result = kind.handler(context)
        except LeaseLost:
            logger.warning("job %s was taken over by another worker; stopping", job_id)
            return
        except JobCancelled:
            _finish(job, token, JobState.CANCELLED)
            return
        except JobFailed as failure:
            error = {"code": failure.code, "message": failure.message}
            _finish(job, token, JobState.FAILED, error=error)
            return
        except Exception:
            reference = uuid.uuid4().hex[:12]
            logger.exception("job %s (%s) crashed [ref %s]", job_id, job.kind, reference)
            error = {"code": "INTERNAL_ERROR", "message": f"Unexpected error (ref {reference})."}
            _finish(job, token, JobState.FAILED, error=error)
            return
    _finish(job, token, JobState.SUCCEEDED, result=result or {})
