"""Quick runs (Postgres): a job is held by a lock on its row, not claimed, until it has run for
DEPOT_JOB_QUICK_SECONDS. One that ends sooner records its start and its end in one commit.

Why: a claim (QUEUED -> RUNNING with a lease, and job.started) and an end (job.succeeded) are
two durable commits, both on the path from the mutation to the subscriber's last event, and
most jobs of the interactive lane end within milliseconds (bench/realtime README, session 11).

How:
- hold: on a connection of the thread's own, in a transaction, the job's row is read and locked
  (transitions.hold_sql: only a QUEUED job with no cancel pending and an attempt left, and only
  if no one else holds it), in one round trip with its BEGIN. No row: the ordinary claim decides.
- the handler runs on the thread's usual connection, as in any run.
- end: the row's end (its state, result or error, the attempt, started_at) and two events,
  job.started and the end's, in one statement, committed in the same round trip. Both are
  published after that, in order.
- claim: after DEPOT_JOB_QUICK_SECONDS (the lease renewer's first round), the held transaction
  runs the ordinary claim statement, with any progress reported meanwhile, and commits. From then
  on it is a running job with a lease, and its end is the ordinary one.
- while held, progress is kept on the job (the claim or the end writes it), and a check for a
  cancel returns at once: no cancel can be pending, since a cancel waits for the lock. Anything
  else that writes the row as a running job's claims it first (JobContext._mine).

The lock does what a lease does otherwise. Another worker's claim of the job (a duplicate
message) skips the row, or waits for the lock and then finds the job finished; a cancel and the
sweeper wait for it. If the worker dies, Postgres ends its transaction (the session's
idle-in-transaction timeout bounds a client that vanished) and the job is QUEUED again with no
attempt counted. The sweeper then dispatches it as a redelivery, which is never held, so a job
that kills its worker still uses up its attempts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from domain.common.failpoints import failpoint
from domain.jobs import events, transitions
from domain.jobs.errors import JobTimedOut
from domain.jobs.models import Event, Job, JobState
from domain.jobs.payloads import job_event_payload
from realtime import publish

logger = logging.getLogger("depot.jobs")

_threads = threading.local()
_IDLE = psycopg.pq.TransactionStatus.IDLE


def possible(*, redelivery: bool) -> bool:
    return (
        not redelivery
        and settings.DEPOT_JOB_QUICK_SECONDS > 0
        and transitions.one_statement_possible()
    )


class HeldJob:
    """A job held by the lock on its row, until `claim` (a running job with a lease from then
    on) or `end`. Used by the job's thread and the lease renewer's, one at a time."""

    def __init__(
        self,
        db: BaseDatabaseWrapper,
        job: Job,
        token: str,
        started_at: datetime,
        deadline: datetime | None,
    ):
        self.job = job
        self.token = token
        self.started_at = started_at
        self.deadline = deadline  # of the run's hard time limit, recorded by the claim
        self._db = db
        self._lock = threading.Lock()
        self._held = True
        self._claimed = False

    @property
    def held(self) -> bool:
        return self._held

    def claim(self) -> bool:
        """Make the hold an ordinary claim (committed, with job.started). False if the hold was
        lost (the connection broke): the job is QUEUED again and this run is no longer its own."""
        with self._lock:
            if not self._held:
                return self._claimed
            job = self.job
            progress = (job.progress_done, job.progress_total, job.progress_stage)
            sql, params, now = transitions.claim_statement(
                job.pk, self.token, self.deadline, self.started_at, progress
            )
            try:
                row = _commit_with(self._db, sql, params)
            except Exception:
                logger.exception("job %s: claiming the held job failed", self.job.pk)
                _abandon(self._db)
                return False
            finally:
                # Only now: until the claim has committed, the row is not a running job's, and
                # `held` must say so to a thread that does not take the lock (check_cancelled).
                self._held = False
            if row is None:  # cannot happen while we hold the lock; say so if it does
                logger.error("job %s: the held job could not be claimed", self.job.pk)
                return False
            claimed = transitions.claimed(row, now)
            for field in Job._meta.concrete_fields:
                setattr(self.job, field.attname, getattr(claimed, field.attname))
            self._claimed = True
            return True

    def keep_progress(self, done: int, total: int | None, stage: str) -> bool:
        """Keep reported progress on the job, for the claim or the end to write; False if no
        longer held (the caller writes it to the row)."""
        with self._lock:
            if self._held:
                self.job.progress_done, self.job.progress_total = done, total
                self.job.progress_stage = stage
            return self._held

    def end(self, changes: dict[str, Any], type: str, payload: dict[str, Any]) -> bool:
        """Record the end and job.started with it, if still held; False if claimed meanwhile
        (the caller ends it as a running job). Raises if the database does (the job is then
        QUEUED again, for the sweeper)."""
        with self._lock:
            if not self._held:
                return False
            job = self.job
            attempt = job.attempts + 1
            started_payload = job_event_payload(job, attempt=attempt) | {
                "state": JobState.RUNNING.value
            }
            # Progress reported while held was kept on the job (JobContext.progress).
            changes = {
                "progress_done": job.progress_done,
                "progress_total": job.progress_total,
                "progress_stage": job.progress_stage,
                **changes,
                "started_at": self.started_at,
            }
            sql, params = transitions.end_held_statement(
                job, changes, (started_payload, self.started_at), (type, payload)
            )
            try:
                rows = _commit_with(self._db, sql, params, all_rows=True)
            except Exception:
                _abandon(self._db)
                raise
            finally:
                self._held = False  # as in claim: once the end has committed (or failed)
            for name, raw in changes.items():
                setattr(job, name, raw)
            job.attempts = attempt
            (started_id, started_sequence), (ended_id, ended_sequence) = rows
            common = {"workspace_id": job.workspace_id}
            with publish.sent_from_this_thread():
                events.announce_committed(
                    Event(
                        id=started_id,
                        sequence=started_sequence,
                        type="job.started",
                        payload=started_payload,
                        created_at=self.started_at,
                        **common,
                    ),
                    Event(
                        id=ended_id,
                        sequence=ended_sequence,
                        type=type,
                        payload=payload,
                        created_at=changes["updated_at"],
                        **common,
                    ),
                    job_id=job.pk,
                )
            return True

    def let_go(self) -> None:
        """Give the row back untouched, if still held (the run stopped without an end)."""
        with self._lock:
            if self._held:
                self._held = False
                _abandon(self._db)


def hold(job_id: int, deadline: datetime | None = None, token: str | None = None) -> HeldJob | None:
    """Hold the job for a quick run, or None (not QUEUED, a cancel pending, out of attempts,
    held by another worker, or no connection): the ordinary claim then decides. `token`: the
    lease token its claim will take, if it comes to that."""
    db = _connection()
    sql, params = transitions.hold_sql(job_id)
    # A client that vanished without closing its socket: Postgres ends the session after a
    # lease's time idle in this transaction (past the hold's own length), and the job is QUEUED
    # again.
    timeout = int(settings.DEPOT_JOB_LEASE_SECONDS + settings.DEPOT_JOB_QUICK_SECONDS) + 1
    started_at = timezone.now()
    try:
        with _statements(db) as cursor:
            cursor.execute(
                f"BEGIN; SET LOCAL idle_in_transaction_session_timeout = '{timeout}s'; {sql}",
                params,
            )
            cursor.nextset()
            cursor.nextset()
            row = cursor.fetchone()
        failpoint("job.after_hold")
    except JobTimedOut:
        # The run's time is up (Celery's soft limit, landing here): the job is not ours, and
        # no claim, no run follows (runner.execute).
        _abandon(db)
        raise
    except Exception:
        logger.warning("job %s: could not hold it, claiming it instead", job_id, exc_info=True)
        _abandon(db)
        return None
    if row is None:
        _abandon(db)
        return None
    return HeldJob(
        db, transitions.job_from_row(row), token or uuid.uuid4().hex, started_at, deadline
    )


def done_with_connection() -> None:
    """After a run: the held connection goes back to the pool, unless this thread keeps its
    connections (a prefork child's main thread, project.celery) or it broke. A transaction
    still open on it is a hold the run lost track of (its soft time limit landed as `hold`
    returned it): it is let go, not left to lock the row, and the next hold, until Postgres'
    idle timeout."""
    db = getattr(_threads, "db", None)
    if db is None:
        return
    if db.connection is not None and db.connection.info.transaction_status != _IDLE:
        _abandon(db)
    db.close_if_unusable_or_obsolete()


def _connection() -> BaseDatabaseWrapper:
    db = getattr(_threads, "db", None)
    if db is None:
        db = connections.create_connection(DEFAULT_DB_ALIAS)
        db.inc_thread_sharing()  # the lease renewer's thread claims a held job on it
        _threads.db = db
    return db


def _commit_with(
    db: BaseDatabaseWrapper, sql: str, params: list[Any], *, all_rows: bool = False
) -> Any:
    """Run the statement in the held transaction and COMMIT, in one round trip."""
    with _statements(db) as cursor:
        cursor.execute(f"{sql}; COMMIT", params)
        return cursor.fetchall() if all_rows else cursor.fetchone()


@contextlib.contextmanager
def _statements(db: BaseDatabaseWrapper) -> Iterator[psycopg.ClientCursor[Any]]:
    """A cursor that sends several statements as one query (BEGIN or COMMIT with the statement
    next to it: one round trip), whatever binding Django's cursors use; Django's exceptions.
    (psycopg's pipeline mode took an extra round trip for its closing sync.)"""
    db.ensure_connection()
    with db.wrap_database_errors, psycopg.ClientCursor(db.connection) as cursor:
        yield cursor


def _rollback(db: BaseDatabaseWrapper) -> None:
    with _statements(db) as cursor:
        cursor.execute("ROLLBACK")


def _abandon(db: BaseDatabaseWrapper) -> None:
    """End the held transaction however it stands; a connection that will not say is closed
    (Postgres then ends the transaction)."""
    try:
        _rollback(db)
    except Exception:
        db.close()


def _forget_after_fork() -> None:
    # A forked child must not use its parent's connection (nor its thread-local).
    global _threads
    _threads = threading.local()


os.register_at_fork(after_in_child=_forget_after_fork)
