"""Live subscriptions over graphql-transport-ws (strawberry's Channels consumer).

events(): join the workspace's group first, then replay from Postgres after the cursor, then
go live. Live messages at or below the cursor are dropped (they were replayed), and a gap in the
live sequence (channels-redis is at-most-once) is filled from Postgres before going on. Because
sequence numbers follow commit order, this yields every durable event once, in order.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from asgiref.sync import sync_to_async
from strawberry import relay

from domain.accounts.models import Permission
from domain.accounts.selectors import require_permission
from domain.common.errors import DomainError
from domain.jobs import selectors as jobs
from domain.jobs.models import Job
from realtime import groups
from schema.context import Info, actor_of
from schema.errors import decode_id, graphql_error
from schema.types.jobs import EventType, JobType

REPLAY_PAGE = 500


class CursorExpired(DomainError):
    code = "CURSOR_EXPIRED"


def _authorise_events(
    info: Info, workspace_id: relay.GlobalID, after: int | None
) -> tuple[int, int]:
    pk = decode_id(workspace_id, "Workspace", path="workspaceId")
    require_permission(actor=actor_of(info), workspace_id=pk, needed=Permission.READ)
    last, pruned_through = jobs.event_cursor_state(workspace_id=pk)
    if after is not None and after < pruned_through:
        raise CursorExpired(
            f"Events up to {pruned_through} were pruned; reload the current state, then "
            f"subscribe after {last}.",
            path=["after"],
        )
    return pk, (last if after is None else after)


async def _replay(workspace_pk: int, after: int, through: int | None = None) -> list[EventType]:
    """Durable events after `after` (up to `through`, if given), in order."""
    result: list[EventType] = []
    while True:
        page = await sync_to_async(jobs.events_after)(
            workspace_id=workspace_pk, after=after, limit=REPLAY_PAGE
        )
        for event in page:
            if through is not None and event.sequence > through:
                return result
            result.append(EventType.from_model(event))
            after = event.sequence
        if len(page) < REPLAY_PAGE:
            return result


@strawberry.type(description="Live updates over graphql-transport-ws at /graphql/.")
class Subscription:
    @strawberry.subscription(
        description="Durable events of a workspace: those after `after` (replayed), then live "
        "ones, each exactly once, in order. Omit `after` to start from now. Resume after a "
        "disconnect with the last sequence you received."
    )
    async def events(
        self, info: Info, workspace_id: relay.GlobalID, after: int | None = None
    ) -> AsyncGenerator[EventType, None]:
        try:
            workspace_pk, cursor = await sync_to_async(_authorise_events)(info, workspace_id, after)
        except DomainError as error:
            raise graphql_error(error) from error
        group = groups.workspace_events(workspace_pk)
        async with info.context.ws.listen_to_channel(groups.EVENT_MESSAGE, groups=[group]) as live:
            for event in await _replay(workspace_pk, cursor):
                yield event
                cursor = event.sequence
            async for message in live:
                if message["workspace_id"] != workspace_pk or message["sequence"] <= cursor:
                    continue
                if message["sequence"] > cursor + 1:
                    for event in await _replay(workspace_pk, cursor, through=message["sequence"]):
                        yield event
                        cursor = event.sequence
                    continue
                yield EventType.from_message(message)
                cursor = message["sequence"]

    @strawberry.subscription(
        description="A job's state and progress: its current state at once, then every change "
        "(progress a few times a second at most), ending after its final state."
    )
    async def job(self, info: Info, id: relay.GlobalID) -> AsyncGenerator[JobType, None]:
        def load() -> Job:
            return jobs.job_get_for(actor=actor_of(info), job_id=decode_id(id, "Job"))

        try:
            job = await sync_to_async(load)()
        except DomainError as error:
            raise graphql_error(error) from error
        group = groups.job_updates(job.pk)
        async with info.context.ws.listen_to_channel(groups.JOB_MESSAGE, groups=[group]) as live:
            # Read after joining the group, so no change falls between the read and the join.
            job = await sync_to_async(load)()
            yield job  # type: ignore[misc]
            if job.is_final:
                return
            async for message in live:
                if message["job_id"] != job.pk:
                    continue
                job = await sync_to_async(load)()
                yield job  # type: ignore[misc]
                if job.is_final:
                    return
