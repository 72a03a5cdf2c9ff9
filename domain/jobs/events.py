"""Durable events: written in the transaction of the change they describe, published after it.

The per-workspace sequence is taken by incrementing EventCounter in the writing transaction. The
row lock that UPDATE takes is held until commit, so a second writer of the same workspace waits,
and sequence numbers are assigned in commit order: no event can commit below a cursor that a
reader has already passed. A plain auto-increment id does not give this.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction

from domain.jobs.models import Event, EventCounter
from realtime import publish


def _next_sequence(workspace_id: int) -> int:
    table = EventCounter._meta.db_table
    sql = (
        f"UPDATE {table} SET last_sequence = last_sequence + 1 "  # noqa: S608 (a model's table)
        "WHERE workspace_id = %s RETURNING last_sequence"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [workspace_id])
        row = cursor.fetchone()
        if row is None:
            EventCounter.objects.bulk_create(
                [EventCounter(workspace_id=workspace_id)], ignore_conflicts=True
            )
            cursor.execute(sql, [workspace_id])
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
    event = Event.objects.create(
        workspace_id=workspace_id,
        sequence=_next_sequence(workspace_id),
        type=type,
        payload=payload,
    )
    message = publish.event_message(
        workspace_id=workspace_id,
        sequence=event.sequence,
        type=type,
        payload=payload,
        created_at=event.created_at.isoformat(),
        job_id=job_id,
    )
    transaction.on_commit(lambda: publish.publish_event(message))
    return event
