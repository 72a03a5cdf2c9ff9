"""Live subscriptions over graphql-transport-ws (strawberry's Channels consumer).

events(): join the workspace's group first, then replay from Postgres after the cursor, then
go live. Live messages at or below the cursor are dropped (they were replayed), and a gap in the
live sequence (channels-redis is at-most-once) is filled from Postgres before going on. Because
sequence numbers follow commit order, this yields every durable event once, in order.

Every subscription listens through a bounded backlog (realtime/listen.py): a subscriber that
falls too far behind gets SUBSCRIBER_TOO_SLOW with the cursor to resume from, and its buffer is
freed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from asgiref.sync import sync_to_async
from django.conf import settings
from graphql import GraphQLError
from strawberry import relay

from domain.accounts.models import Permission
from domain.accounts.selectors import require_permission
from domain.assets import selectors as assets
from domain.assets.models import Asset
from domain.common.errors import DomainError
from domain.jobs import selectors as jobs
from domain.jobs.models import Job
from domain.jobs.stats import job_stats
from realtime import groups
from realtime.listen import Lagging, listen
from schema.context import Info, actor_of
from schema.errors import decode_id, graphql_error
from schema.types.assets import AssetType
from schema.types.jobs import EventType, JobFilter, JobStatsType, JobType

REPLAY_PAGE = 500
STATS_MIN_INTERVAL = 0.5


class CursorExpired(DomainError):
    code = "CURSOR_EXPIRED"


def too_slow(cursor: int | None) -> GraphQLError:
    return GraphQLError(
        "You fell too far behind; subscribe again with `after` set to resumeAfter.",
        extensions={"code": "SUBSCRIBER_TOO_SLOW", "resumeAfter": cursor},
    )


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


async def _authorised(call: Any) -> Any:
    try:
        return await sync_to_async(call)()
    except DomainError as error:
        raise graphql_error(error) from error


def _workspace_pk(info: Info, workspace_id: relay.GlobalID) -> int:
    pk = decode_id(workspace_id, "Workspace", path="workspaceId")
    require_permission(actor=actor_of(info), workspace_id=pk, needed=Permission.READ)
    return pk


@strawberry.type(description="A change to an asset of a collection.")
class AssetChange:
    type: str = strawberry.field(description="asset.created, asset.ready, asset.deleted, ...")
    sequence: int = strawberry.field(description="The event's sequence (the events cursor).")
    asset_id: relay.GlobalID = strawberry.field(description="The asset's id.")
    asset: AssetType | None = strawberry.field(description="The asset now; null once deleted.")


@strawberry.type(description="Live updates over graphql-transport-ws at /graphql/.")
class Subscription:
    @strawberry.subscription(
        description="Durable events of a workspace: those after `after` (replayed), then live "
        "ones, each exactly once, in order. Omit `after` to start from now; `types` keeps only "
        "those types (e.g. job.succeeded) or prefixes ending in a dot (e.g. asset.)."
    )
    async def events(
        self,
        info: Info,
        workspace_id: relay.GlobalID,
        after: int | None = None,
        types: list[str] | None = None,
    ) -> AsyncGenerator[EventType, None]:
        workspace_pk, cursor = await _authorised(
            lambda: _authorise_events(info, workspace_id, after)
        )
        wanted = _type_matcher(types)
        group = groups.workspace_events(workspace_pk)
        consumer = info.context.ws
        async with listen(
            consumer, groups.EVENT_MESSAGE, [group], settings.DEPOT_WS_BACKLOG
        ) as live:
            for event in await _replay(workspace_pk, cursor):
                cursor = event.sequence
                if wanted(event.type):
                    yield event
            try:
                async for message in live:
                    if message["workspace_id"] != workspace_pk or message["sequence"] <= cursor:
                        continue
                    if message["sequence"] > cursor + 1:
                        gap = await _replay(workspace_pk, cursor, through=message["sequence"])
                        for event in gap:
                            cursor = event.sequence
                            if wanted(event.type):
                                yield event
                        continue
                    cursor = message["sequence"]
                    if wanted(message["event_type"]):
                        yield EventType.from_message(message)
            except Lagging:
                raise too_slow(cursor) from None

    @strawberry.subscription(
        description="A job's state and progress: its current state at once, then every change "
        "(progress a few times a second at most), ending after its final state."
    )
    async def job(self, info: Info, id: relay.GlobalID) -> AsyncGenerator[JobType, None]:
        def load() -> Job:
            return jobs.job_get_for(actor=actor_of(info), job_id=decode_id(id, "Job"))

        job = await _authorised(load)
        group = groups.job_updates(job.pk)
        async with listen(
            info.context.ws, groups.JOB_MESSAGE, [group], settings.DEPOT_WS_BACKLOG
        ) as live:
            # Read after joining the group, so no change falls between the read and the join.
            job = await sync_to_async(load)()
            yield job  # type: ignore[misc]
            if job.is_final:
                return
            try:
                async for message in live:
                    if message["job_id"] != job.pk:
                        continue
                    job = await sync_to_async(load)()
                    yield job  # type: ignore[misc]
                    if job.is_final:
                        return
            except Lagging:
                raise too_slow(None) from None

    @strawberry.subscription(
        description="Changes to the jobs of a workspace that match the filter: each changed "
        "job as it is now (state changes and progress, a few updates a second per job at most)."
    )
    async def jobs(
        self, info: Info, workspace_id: relay.GlobalID, filters: JobFilter | None = None
    ) -> AsyncGenerator[JobType, None]:
        import strawberry_django

        workspace_pk = await _authorised(lambda: _workspace_pk(info, workspace_id))

        def load(job_id: int) -> Job | None:
            queryset = jobs.job_list_for(actor=actor_of(info)).filter(
                pk=job_id, workspace_id=workspace_pk
            )
            if filters is not None:
                queryset = strawberry_django.filters.apply(filters, queryset, info)
            return queryset.first()

        group = groups.workspace_jobs(workspace_pk)
        async with listen(
            info.context.ws, groups.JOB_MESSAGE, [group], settings.DEPOT_WS_BACKLOG
        ) as live:
            try:
                async for message in live:
                    if message.get("workspace_id") != workspace_pk:
                        continue
                    job = await sync_to_async(load)(message["job_id"])
                    if job is not None:
                        yield job  # type: ignore[misc]
            except Lagging:
                raise too_slow(None) from None

    @strawberry.subscription(
        description="jobStats of a workspace, at once and then whenever its jobs change, "
        "at most twice a second."
    )
    async def job_stats(
        self, info: Info, workspace_id: relay.GlobalID, window_minutes: int = 15
    ) -> AsyncGenerator[JobStatsType, None]:
        workspace_pk = await _authorised(lambda: _workspace_pk(info, workspace_id))
        window = max(1, min(window_minutes, 60))

        async def current() -> JobStatsType:
            stats = await sync_to_async(job_stats)(workspace_id=workspace_pk, window_minutes=window)
            return JobStatsType.from_domain(stats)

        group = groups.workspace_jobs(workspace_pk)
        async with listen(
            info.context.ws, groups.JOB_MESSAGE, [group], settings.DEPOT_WS_BACKLOG
        ) as live:
            previous = await current()
            yield previous
            last_sent = time.monotonic()
            try:
                async for _ in live:
                    # Coalesce a burst of changes into one update per interval.
                    wait = STATS_MIN_INTERVAL - (time.monotonic() - last_sent)
                    if wait > 0:
                        await asyncio.sleep(wait)
                    while not live.queue.empty():
                        live.queue.get_nowait()
                    stats = await current()
                    last_sent = time.monotonic()
                    if stats != previous:
                        previous = stats
                        yield stats
            except Lagging:
                raise too_slow(None) from None

    @strawberry.subscription(
        description="Assets of a collection as they are created, uploaded, processed, updated, "
        "moved or deleted."
    )
    async def asset_changed(
        self, info: Info, collection_id: relay.GlobalID
    ) -> AsyncGenerator[AssetChange, None]:
        def authorise() -> tuple[int, int]:
            pk = decode_id(collection_id, "Collection", path="collectionId")
            collection = assets.collection_get_for(actor=actor_of(info), collection_id=pk)
            return collection.pk, collection.workspace_id

        collection_pk, workspace_pk = await _authorised(authorise)
        wanted_collection = str(relay.GlobalID("Collection", str(collection_pk)))

        def load(asset_id: relay.GlobalID) -> Asset | None:
            return (
                assets.asset_list_for(actor=actor_of(info)).filter(pk=int(asset_id.node_id)).first()
            )

        group = groups.workspace_events(workspace_pk)
        async with listen(
            info.context.ws, groups.EVENT_MESSAGE, [group], settings.DEPOT_WS_BACKLOG
        ) as live:
            try:
                async for message in live:
                    payload = message["payload"]
                    if not message["event_type"].startswith("asset."):
                        continue
                    if payload.get("collectionId") != wanted_collection:
                        continue
                    asset_id = relay.GlobalID.from_id(payload["assetId"])
                    asset = await sync_to_async(load)(asset_id)
                    yield AssetChange(
                        type=message["event_type"],
                        sequence=message["sequence"],
                        asset_id=asset_id,
                        asset=asset,  # type: ignore[arg-type]
                    )
            except Lagging:
                raise too_slow(None) from None


def _type_matcher(types: list[str] | None) -> Any:
    if not types:
        return lambda _type: True
    exact = {t for t in types if not t.endswith(".")}
    prefixes = tuple(t for t in types if t.endswith("."))
    return lambda event_type: event_type in exact or event_type.startswith(prefixes)
