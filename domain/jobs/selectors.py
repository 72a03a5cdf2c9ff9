from __future__ import annotations

from django.db import connection
from django.db.models import QuerySet

from domain.accounts.actor import Actor
from domain.common.errors import NotFound
from domain.jobs.models import Event, EventCounter, Job
from domain.jobs.visibility import event_visible_to


def job_list_for(*, actor: Actor) -> QuerySet[Job]:
    return Job.objects.filter(workspace_id__in=actor.workspace_ids()).order_by("-created_at", "-pk")


def job_get_for(*, actor: Actor, job_id: int) -> Job:
    job = job_list_for(actor=actor).filter(pk=job_id).first()
    if job is None:
        raise NotFound("No such job.", path=["id"])
    return job


def events_after(*, workspace_id: int, after: int, limit: int = 500) -> list[Event]:
    """Durable events after a cursor, in sequence order (a page of them)."""
    return list(
        Event.objects.filter(workspace_id=workspace_id, sequence__gt=after).order_by("sequence")[
            :limit
        ]
    )


def events_visible_after(
    *, actor: Actor, workspace_id: int, after: int, limit: int = 500
) -> list[Event]:
    """`events_after` less the events the actor may not see (domain.jobs.visibility), still
    `limit` of them unless the stream ends: pages are read on past hidden ones, so a short
    page means the end, as it does without hidden events."""
    visible: list[Event] = []
    size = limit
    while len(visible) < limit:
        page = events_after(workspace_id=workspace_id, after=after, limit=size)
        visible += [
            event
            for event in page
            if event_visible_to(
                actor, workspace_id=workspace_id, type=event.type, payload=event.payload
            )
        ]
        if len(page) < size:
            break
        after = page[-1].sequence
        size = max(limit, 500)  # read on in large pages: `first: 1` past many hidden events
    return visible[:limit]


def event_cursor_state(*, workspace_id: int) -> tuple[int, int]:
    """(last sequence, last pruned sequence) of a workspace's stream."""
    row = (
        EventCounter.objects.filter(workspace_id=workspace_id)
        .values_list("last_sequence", "pruned_through")
        .first()
    )
    return row if row is not None else (0, 0)


def event_sequences(*, workspace_ids: list[int]) -> dict[int, int]:
    """The last event sequence of each workspace (0 for one that has none yet)."""
    if not workspace_ids:
        return {}
    # Raw on purpose: it runs on every cached read, where the ORM's compile step would cost
    # more than the query.
    table = EventCounter._meta.db_table
    placeholders = ", ".join(["%s"] * len(workspace_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT workspace_id, last_sequence FROM {table} "  # noqa: S608 (ids are bound)
            f"WHERE workspace_id IN ({placeholders})",
            workspace_ids,
        )
        found = dict(cursor.fetchall())
    return {workspace_id: found.get(workspace_id, 0) for workspace_id in workspace_ids}
