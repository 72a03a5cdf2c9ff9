"""Durable events: written in the transaction of the change they describe, published after it.

The per-workspace sequence is taken by incrementing EventCounter in the writing transaction. The
row lock that UPDATE takes is held until commit, so a second writer of the same workspace waits,
and sequence numbers are assigned in commit order: no event can commit below a cursor that a
reader has already passed. A plain auto-increment id does not give this.
"""

from __future__ import annotations

from typing import Any, cast

from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone

from domain.jobs.models import Event, EventCounter
from realtime import publish


def _take_sequences(workspace_id: int, count: int = 1) -> int:
    """Reserve `count` sequence numbers; returns the last one. Locks the counter till commit."""
    table = EventCounter._meta.db_table
    sql = (
        f"UPDATE {table} SET last_sequence = last_sequence + %s "  # noqa: S608 (a model's table)
        "WHERE workspace_id = %s RETURNING last_sequence"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [count, workspace_id])
        row = cursor.fetchone()
        if row is None:
            EventCounter.objects.bulk_create(
                [EventCounter(workspace_id=workspace_id)], ignore_conflicts=True
            )
            cursor.execute(sql, [count, workspace_id])
            row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def record(
    workspace_id: int, type: str, payload: dict[str, Any], *, job_id: int | None = None
) -> Event:
    """Write one event in the caller's transaction; it goes live once that transaction commits.

    `job_id` also nudges the subscribers of that job, so they see its state change at once.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("events.record must run inside the transaction of the change")
    event = _insert_with_next_sequence(workspace_id, type, payload)
    if event is None:
        event = Event.objects.create(
            workspace_id=workspace_id,
            sequence=_take_sequences(workspace_id),
            type=type,
            payload=payload,
        )
    _publish_after_commit([event], job_id=job_id)
    return event


def _insert_with_next_sequence(
    workspace_id: int, type: str, payload: dict[str, Any]
) -> Event | None:
    """Postgres: take the sequence and write the event in one statement (one round trip, on
    every job's path). None when that cannot be done here (other databases, or a workspace
    without its counter row yet): the caller takes the two-statement way."""
    if connection.vendor != "postgresql":
        return None
    meta = Event._meta
    created_at = timezone.now()
    prep = {
        name: cast("Field[Any, Any]", meta.get_field(name)).get_db_prep_save(value, connection)
        for name, value in (("payload", payload), ("created_at", created_at))
    }
    counters = EventCounter._meta.db_table
    sql = (
        f"WITH taken AS (UPDATE {counters} SET last_sequence = last_sequence + 1 "  # noqa: S608
        "WHERE workspace_id = %s RETURNING last_sequence) "
        f"INSERT INTO {meta.db_table} (workspace_id, sequence, type, payload, created_at) "
        "SELECT %s, last_sequence, %s, %s, %s FROM taken RETURNING id, sequence"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [workspace_id, workspace_id, type, prep["payload"], prep["created_at"]])
        row = cursor.fetchone()
    if row is None:
        return None
    event = Event(
        id=row[0],
        workspace_id=workspace_id,
        sequence=row[1],
        type=type,
        payload=payload,
        created_at=created_at,
    )
    event._state.adding = False
    event._state.db = connection.alias
    return event


def record_many(workspace_id: int, type: str, payloads: list[dict[str, Any]]) -> list[Event]:
    """Write many events of one type in one round trip each for sequences and rows (bulk edits)."""
    if not connection.in_atomic_block:
        raise RuntimeError("events.record_many must run inside the transaction of the change")
    if not payloads:
        return []
    last = _take_sequences(workspace_id, len(payloads))
    first = last - len(payloads) + 1
    created = Event.objects.bulk_create(
        [
            Event(workspace_id=workspace_id, sequence=first + n, type=type, payload=payload)
            for n, payload in enumerate(payloads)
        ]
    )
    _publish_after_commit(created)
    return created


def announce_committed(*committed: Event, job_id: int | None = None) -> None:
    """Publish events whose transaction already committed (a one-statement transition,
    domain/jobs/runner.py), in order; inside a transaction this would wait for its commit."""
    _publish_after_commit(list(committed), job_id=job_id)


def _publish_after_commit(created: list[Event], job_id: int | None = None) -> None:
    messages = [
        publish.event_message(
            workspace_id=event.workspace_id,
            sequence=event.sequence,
            type=event.type,
            payload=event.payload,
            created_at=event.created_at.isoformat(),
            job_id=job_id,
        )
        for event in created
    ]
    transaction.on_commit(lambda: publish.publish_events(messages))
