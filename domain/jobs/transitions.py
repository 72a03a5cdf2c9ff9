"""The job-row transitions as SQL: the conditional UPDATE that takes a job, and, on Postgres,
the claim and the finish as one statement each.

A no-op job's two transitions (claim with job.started, finish with job.succeeded) were each
BEGIN, the job UPDATE, the event statement and COMMIT: four round trips and Django's atomic()
around them, 3.9-4.4 ms of a ~20 ms mutation-to-client loop (bench/realtime, BENCH_TRACE=1).
On Postgres, outside any transaction, each transition is one statement instead: the job
UPDATE, the workspace's counter and the event INSERT as data-modifying CTEs, which Postgres
runs as one transaction (autocommit). Same guarantees as the general way: the counter row is
locked by the statement until it commits, so sequences still follow commit order; the event
commits with the state change or not at all; the live publish still happens after commit.
The counter is taken by an upsert, so a workspace without its counter row needs no second
statement. Anything unusual (a cancel pending, out of attempts, not ours to take) falls back
to the general way in a transaction.
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.db import connection
from django.db.models import Field
from django.db.models.sql.subqueries import InsertQuery
from django.utils import timezone

from domain.common.ids import global_id
from domain.jobs import events, redispatch
from domain.jobs.models import Event, EventCounter, Job, JobState
from domain.jobs.payloads import job_event_payload


def lease_duration() -> timedelta:
    return timedelta(seconds=settings.DEPOT_JOB_LEASE_SECONDS)


def _field(name: str) -> Field[Any, Any]:
    return cast("Field[Any, Any]", Job._meta.get_field(name))


def column(name: str) -> str:
    return connection.ops.quote_name(str(_field(name).column))


def value(name: str, raw: Any) -> Any:
    return _field(name).get_db_prep_save(raw, connection)


def take_sql(
    token: str, now: datetime, job_id: int, deadline: datetime | None, extra_condition: str = ""
) -> tuple[str, list]:
    """The conditional UPDATE that takes the job, returning the whole row as it is now.
    `deadline`: when the run's hard time limit ends, if its worker enforces one."""
    return _take_sql_text(extra_condition), _take_params(token, now, job_id, deadline)


@functools.cache
def not_outlived_condition() -> str:
    """A condition for the take: not a RUNNING job whose lease outlived its run's hard deadline
    (domain/jobs/time_limits.py: killed by its time limit, ended JOB_TIMED_OUT, never taken
    over). The columns are the row's before the UPDATE."""
    state, deadline = column("state"), column("deadline_at")
    return (
        f" AND ({state} = '{JobState.QUEUED.value}' OR {deadline} IS NULL "
        f"OR {deadline} > {column('lease_expires_at')})"
    )


@functools.cache
def _take_sql_text(extra_condition: str, with_progress: bool = False) -> str:
    # Only names of ours (Postgres and SQLite quote them alike): the same text for a process.
    quote = connection.ops.quote_name
    state, expires = column("state"), column("lease_expires_at")
    return (
        f"UPDATE {quote(Job._meta.db_table)} SET {state} = %s, "  # noqa: S608 (our names)
        f"{column('lease_token')} = %s, {expires} = %s, "
        f"{column('attempts')} = {column('attempts')} + 1, {column('started_at')} = %s, "
        f"{column('updated_at')} = %s, {column('next_dispatch_at')} = %s, "
        f"{column('deadline_at')} = %s, "
        f"{column('redispatches')} = 0{_PROGRESS_SET if with_progress else ''} "
        f"WHERE {column('id')} = %s AND ({state} = %s OR ({state} = %s AND {expires} < %s))"
        f"{extra_condition} RETURNING {_job_columns()}"
    )


_PROGRESS_SET = ", progress_done = %s, progress_total = %s, progress_stage = %s"


def _take_params(
    token: str,
    now: datetime,
    job_id: int,
    deadline: datetime | None,
    started_at: datetime | None = None,
    progress: tuple[int, int | None, str] | None = None,
) -> list[Any]:
    return [
        JobState.RUNNING.value,
        token,
        value("lease_expires_at", now + lease_duration()),
        value("started_at", started_at or now),
        value("updated_at", now),
        # Claimed: the sweeper's backoff starts again (domain/jobs/sweeper.py); once the lease
        # expires, the first sweep sends the job again.
        value("next_dispatch_at", now),
        value("deadline_at", deadline),
        *(progress or ()),
        job_id,
        JobState.QUEUED.value,
        JobState.RUNNING.value,
        value("lease_expires_at", now),
    ]


def _job_fields() -> list[Field[Any, Any]]:
    return list(Job._meta.concrete_fields)


@functools.cache
def _job_columns() -> str:
    """The whole job row, for a transition's RETURNING (read back by job_from_row)."""
    return ", ".join(column(field.name) for field in _job_fields())


@functools.cache
def _job_attnames() -> list[str]:
    return [field.attname for field in _job_fields()]


@functools.cache
def _job_converters(vendor: str) -> list[tuple[int, tuple[list[Any], Any]]]:
    """Per column of a Job row as _job_columns returns it, Django's converters for the
    database (the JSON fields arrive as text), as the ORM's compiler would apply them."""
    columns = [field.get_col(Job._meta.db_table) for field in _job_fields()]
    compiler = Job.objects.none().query.get_compiler(connection=connection)
    return list(compiler.get_converters(columns).items())


def _job_and_its_event(sql: str, params: list[Any]) -> tuple[Job, int, int] | None:
    """Run a transition that returns the job's row, then its event's id and sequence."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    event_id, sequence = row[-2:]
    return job_from_row(row), event_id, sequence


def job_from_row(row: tuple[Any, ...]) -> Job:
    """A Job from the first columns of `row` (_job_columns), without building a RawQuerySet
    for one row on every claim."""
    attnames = _job_attnames()
    values = list(row[: len(attnames)])
    for position, (converters, expression) in _job_converters(connection.vendor):
        for convert in converters:
            values[position] = convert(values[position], expression, connection)
    return Job.from_db(connection.alias, attnames, values)


def one_statement_possible() -> bool:
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def one_statement_in_any_transaction_possible() -> bool:
    """For the transitions a request makes (create, retry, cancel): unlike a claim or a finish,
    they often run inside the transaction of the change around them; the statement then commits
    with it (and saves round trips there), and its event is published after that commit."""
    return connection.vendor == "postgresql"


def create_with_queued_event(job: Job) -> tuple[int, int] | None:
    """INSERT the new job and its job.queued event (the workspace's next sequence) in one
    statement; sets the job's pk and returns the event's id and sequence.

    The payload is job_event_payload(job) built in SQL from the new row (_JOB_PAYLOAD_SQL).

    A job with an idempotency key is inserted unless its workspace already has that key (the
    partial unique constraint, as ON CONFLICT's target): then nothing is written, no sequence
    is taken, and this returns None. A concurrent insert of the same key makes this statement
    wait for that transaction, then insert (it rolled back) or return None (it committed).
    The way this replaced (look the key up, insert in a savepoint, catch the IntegrityError)
    took five round trips on every job a mutation started, all of which carry a key.
    """
    # What the ORM's insert compiler does for one row: pre_save fills created_at/updated_at on
    # the job, get_db_prep_save adapts each value (the statement's text is built once, not
    # compiled per job: 0.22 ms of every job a request starts).
    params = [
        field.get_db_prep_save(field.pre_save(job, True), connection) for field in _insert_fields()
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            _create_sql(keyed=job.idempotency_key is not None),
            [*params, "job.queued", value("created_at", job.created_at)],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    job_id, event_id, sequence = row
    job.pk = job_id
    job._state.adding = False
    job._state.db = connection.alias
    return event_id, sequence


def _insert_fields() -> list[Field[Any, Any]]:
    return [f for f in Job._meta.local_concrete_fields if f is not Job._meta.auto_field]


@functools.cache
def _create_sql(*, keyed: bool) -> str:
    insert = InsertQuery(Job)
    insert.insert_values(_insert_fields(), [Job()])  # only the text is kept, not its values
    [(insert_sql, _)] = insert.get_compiler(connection=connection).as_sql()
    if keyed:
        key = column("idempotency_key")
        insert_sql += (
            f" ON CONFLICT ({column('workspace')}, {key}) WHERE {key} IS NOT NULL DO NOTHING"
        )
    returned = ", ".join(column(name) for name in ("id", "workspace", "kind", "state"))
    return (
        f"WITH j AS ({insert_sql} RETURNING {returned}), "  # noqa: S608 (our names)
        + _counter_and_event_sql("j", "%s", _JOB_PAYLOAD_SQL)
        + " SELECT j.id, e.id, e.sequence FROM j CROSS JOIN e"
    )


# job_event_payload(j) in SQL, for a CTE `j` with the job's id, kind and state. `jobId` is the
# global id, base64 of "Job:<pk>" (short enough that Postgres' encoder adds no line break).
_JOB_PAYLOAD_SQL = (
    "jsonb_build_object('jobId', encode(convert_to('Job:' || j.id, 'UTF8'), 'base64'), "
    "'kind', j.kind, 'state', j.state)"
)


def _counter_and_event_sql(source: str, type_sql: str, payload_sql: str) -> str:
    """CTEs `c` (the workspace's next sequence, locked till commit) and `e` (the event), for the
    one row of `source` (a CTE with workspace_id)."""
    return (
        _counter_sql(source, taken=1) + f", e AS (INSERT INTO {Event._meta.db_table} "  # noqa: S608 (our names)
        "(workspace_id, sequence, type, payload, created_at) "
        f"SELECT c.workspace_id, c.last_sequence, {type_sql}, {payload_sql}, %s "
        f"FROM c CROSS JOIN {source} RETURNING id, sequence)"
    )


def _counter_sql(source: str, taken: int) -> str:
    """CTE `c`: the workspace of `source`'s one row takes `taken` sequences; `c.last_sequence`
    is the last of them. The counter row stays locked till commit."""
    counters = EventCounter._meta.db_table
    return (
        f"c AS (INSERT INTO {counters} (workspace_id, last_sequence, pruned_through) "  # noqa: S608
        f"SELECT workspace_id, {taken}, 0 FROM {source} "
        f"ON CONFLICT (workspace_id) DO UPDATE SET last_sequence = {counters}.last_sequence "
        f"+ {taken} RETURNING workspace_id, last_sequence)"
    )


@functools.cache
def _claim_sql(with_progress: bool = False) -> str:
    # Only the plain case: no cancel pending, an attempt left (else the general way).
    guard = (
        f" AND NOT {column('cancel_requested')} AND {column('attempts')} < {column('max_attempts')}"
        + not_outlived_condition()
    )
    # job.started's payload is job_event_payload(job, attempt=...): what the row decides (kind,
    # attempts) is merged in SQL; the Python side builds the same dict to publish.
    return (
        f"WITH j AS ({_take_sql_text(guard, with_progress)}), "  # noqa: S608 (our names)
        + _counter_and_event_sql(
            "j", "%s", "%s::jsonb || jsonb_build_object('kind', j.kind, 'attempt', j.attempts)"
        )
        + " SELECT j.*, e.id, e.sequence FROM j CROSS JOIN e"
    )


def claim_in_one_statement(
    job_id: int, deadline: datetime | None, token: str | None = None
) -> tuple[Job, str] | None:
    token = token or uuid.uuid4().hex
    sql, params, now = claim_statement(job_id, token, deadline)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    return claimed(row, now), token


def claim_statement(
    job_id: int,
    token: str,
    deadline: datetime | None,
    started_at: datetime | None = None,
    progress: tuple[int, int | None, str] | None = None,
) -> tuple[str, list[Any], datetime]:
    """The claim as one statement (the job's row, then job.started's id and sequence), its
    parameters, and its time. A held job (domain/jobs/quick.py) began at `started_at`, before
    the claim, and may have reported `progress` (done, total, stage) meanwhile."""
    now = timezone.now()
    base = {"jobId": global_id("Job", job_id), "state": JobState.RUNNING.value}
    take = _take_params(token, now, job_id, deadline, started_at, progress)
    params = [*take, "job.started", json.dumps(base), now]
    return _claim_sql(with_progress=progress is not None), params, now


def claimed(row: tuple[Any, ...], now: datetime) -> Job:
    """The job a committed claim statement returned; publishes its job.started."""
    event_id, sequence = row[-2:]
    job = job_from_row(row)
    record_job_event_committed(
        job,
        "job.started",
        event_id=event_id,
        sequence=sequence,
        created_at=now,
        attempt=job.attempts,
    )
    return job


def hold_sql(job_id: int) -> tuple[str, list[Any]]:
    """Read and lock a job's row for a quick run (domain/jobs/quick.py): only a QUEUED job with
    no cancel pending and an attempt left, and only if no one else holds it. NO KEY UPDATE, so
    rows that refer to the job (a child job's parent) can still be written meanwhile."""
    return _hold_sql_text(), [job_id, JobState.QUEUED.value]


@functools.cache
def _hold_sql_text() -> str:
    return (
        f"SELECT {_job_columns()} FROM {connection.ops.quote_name(Job._meta.db_table)} "  # noqa: S608
        f"WHERE {column('id')} = %s AND {column('state')} = %s "
        f"AND NOT {column('cancel_requested')} AND {column('attempts')} < {column('max_attempts')} "
        "FOR NO KEY UPDATE SKIP LOCKED"
    )


@functools.cache
def _retry_sql() -> str:
    table = connection.ops.quote_name(Job._meta.db_table)
    state = column("state")
    reset = ", ".join(
        f"{column(name)} = %s"
        for name in (
            "state",
            "error",
            "result",
            "cancel_requested",
            "attempts",
            "progress_done",
            "progress_total",
            "progress_stage",
            "finished_at",
            "dispatched_at",
            "next_dispatch_at",
            "redispatches",
            "updated_at",
        )
    )
    return (
        f"WITH j AS (UPDATE {table} SET {reset} "  # noqa: S608 (our names)
        f"WHERE {column('id')} = %s AND {column('workspace')} = ANY(%s) "
        f"AND {state} IN (%s, %s) RETURNING {_job_columns()}), "
        + _counter_and_event_sql("j", "%s", _JOB_PAYLOAD_SQL)
        + " SELECT j.*, e.id, e.sequence FROM j CROSS JOIN e"
    )


def retry_in_one_statement(job_id: int, *, workspace_ids: list[int]) -> tuple[Job, int, int] | None:
    """Put a failed or cancelled job of one of the workspaces back in the queue with its
    job.retried event (as domain.jobs.services.job_retry does), in one statement. None if there
    is no such job in such a state (nothing is written). Returns the job as it now is, and the
    event's id and sequence."""
    now = timezone.now()
    params = [
        JobState.QUEUED.value,
        None,
        None,
        False,
        0,
        0,
        None,
        "",
        None,
        value("dispatched_at", now),
        value("next_dispatch_at", redispatch.first_due(now)),
        0,
        value("updated_at", now),
        job_id,
        workspace_ids,
        JobState.FAILED.value,
        JobState.CANCELLED.value,
        "job.retried",
        value("updated_at", now),
    ]
    return _job_and_its_event(_retry_sql(), params)


@functools.cache
def _cancel_sql() -> str:
    table = connection.ops.quote_name(Job._meta.db_table)
    state, requested, finished = column("state"), column("cancel_requested"), column("finished_at")
    queued = f"{state} = %s"
    # In SET, the columns are the row before the change; in RETURNING (j), after it.
    return (
        f"WITH j AS (UPDATE {table} SET "  # noqa: S608 (our names)
        f"{state} = CASE WHEN {queued} THEN %s ELSE {state} END, "
        f"{finished} = CASE WHEN {queued} THEN %s ELSE {finished} END, "
        f"{requested} = CASE WHEN {queued} THEN {requested} ELSE TRUE END, "
        f"{column('updated_at')} = %s "
        f"WHERE {column('id')} = %s AND {column('workspace')} = ANY(%s) "
        f"AND ({queued} OR ({state} = %s AND NOT {requested})) "
        f"RETURNING {_job_columns()}), "
        + _counter_and_event_sql(
            "j", f"CASE WHEN j.{state} = %s THEN %s ELSE %s END", _JOB_PAYLOAD_SQL
        )
        + " SELECT j.*, e.id, e.sequence FROM j CROSS JOIN e"
    )


def cancel_in_one_statement(
    job_id: int, *, workspace_ids: list[int]
) -> tuple[Job, str, int, int] | None:
    """What domain.jobs.services.job_cancel does to a queued job (cancelled at once) or a
    running one with no cancel pending yet (cancel requested) of one of the workspaces, with
    its event, in one statement. None if there is no such job (nothing is written). Returns the
    job as it now is, and the event's type, id and sequence."""
    now = value("updated_at", timezone.now())
    queued, running, cancelled = (
        JobState.QUEUED.value,
        JobState.RUNNING.value,
        JobState.CANCELLED.value,
    )
    params = [queued, cancelled, queued, now, queued, now, job_id, workspace_ids, queued, running]
    params += [cancelled, "job.cancelled", "job.cancel_requested", now]
    changed = _job_and_its_event(_cancel_sql(), params)
    if changed is None:
        return None
    job, event_id, sequence = changed
    type = "job.cancelled" if job.state == JobState.CANCELLED else "job.cancel_requested"
    return job, type, event_id, sequence


@functools.cache
def _finish_sql(changed: tuple[str, ...]) -> str:
    """The finish's statement for these changed fields (a few sets of them, for a process)."""
    assignments = ", ".join(f"{column(name)} = %s" for name in changed)
    update = (
        f"UPDATE {connection.ops.quote_name(Job._meta.db_table)} "  # noqa: S608 (our names)
        f"SET {assignments} WHERE {column('id')} = %s AND {column('state')} = %s "
        f"AND {column('lease_token')} = %s RETURNING {column('workspace')}"
    )
    return (
        f"WITH j AS ({update}), "  # noqa: S608 (our names)
        + _counter_and_event_sql("j", "%s", "%s")
        + " SELECT e.id, e.sequence FROM e"
    )


def finish_in_one_statement(
    job: Job, token: str, changes: dict[str, Any], type: str, payload: dict[str, Any]
) -> bool:
    now = changes["updated_at"]
    values = [value(name, raw) for name, raw in changes.items()]
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
        cursor.execute(_finish_sql(tuple(changes)), params)
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


def end_held_statement(
    job: Job,
    changes: dict[str, Any],
    started: tuple[dict[str, Any], datetime],
    ended: tuple[str, dict[str, Any]],
) -> tuple[str, list[Any]]:
    """The end of a held job (domain/jobs/quick.py) as one statement: the row's `changes` plus
    the attempt it counts, then job.started (payload, time) and the end's event (type, payload)
    with the workspace's next two sequences. Returns (event id, sequence) rows, in order."""
    prepared = [value(name, raw) for name, raw in changes.items()]
    payload = Event._meta.get_field("payload")
    (started_payload, started_at), (ended_type, ended_payload) = started, ended
    return _end_held_sql(tuple(changes)), [
        *prepared,
        job.pk,
        "job.started",
        payload.get_db_prep_save(started_payload, connection),
        started_at,
        ended_type,
        payload.get_db_prep_save(ended_payload, connection),
        changes["updated_at"],
    ]


@functools.cache
def _end_held_sql(changed: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{column(name)} = %s" for name in changed)
    attempts = column("attempts")
    update = (
        f"UPDATE {connection.ops.quote_name(Job._meta.db_table)} "  # noqa: S608 (our names)
        f"SET {assignments}, {attempts} = {attempts} + 1 WHERE {column('id')} = %s "
        f"RETURNING {column('workspace')}"
    )
    insert = (
        f"INSERT INTO {Event._meta.db_table} (workspace_id, sequence, type, payload, created_at) "  # noqa: S608
        "SELECT workspace_id, last_sequence - 1, %s, %s, %s FROM c UNION ALL "
        "SELECT workspace_id, last_sequence, %s, %s, %s FROM c RETURNING id, sequence"
    )
    return (
        f"WITH j AS ({update}), {_counter_sql('j', taken=2)}, e AS ({insert}) "  # noqa: S608
        "SELECT id, sequence FROM e ORDER BY sequence"
    )


def record_job_event_committed(
    job: Job, type: str, *, event_id: int, sequence: int, created_at: datetime, **extra: Any
) -> None:
    """Publish an event a one-statement transition wrote: at once if that statement committed
    on its own, else when the caller's transaction commits (a job created inside one)."""
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
