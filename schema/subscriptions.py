"""Live subscriptions over graphql-transport-ws (strawberry's Channels consumer).

events(): join the workspace's group first, then replay from Postgres after the cursor, then
go live. Live messages at or below the cursor are dropped (they were replayed), and a gap in the
live sequence (channels-redis is at-most-once) is filled from Postgres before going on. Because
sequence numbers follow commit order, this yields every durable event once, in order.

assetChanged() is the same stream (_EventStream) kept to one collection's assets, and jobs() the
same stream kept to job events (with its jobs' progress nudges heard in the same queue), so
they are as durable: replayed after a cursor, gaps filled, a lost last change read once idle.

Every subscription listens through a bounded backlog (realtime/listen.py): a subscriber that
falls too far behind gets SUBSCRIBER_TOO_SLOW (with the cursor to resume from, for the
streams of events), and its buffer is freed.

Shared rendering: when an events() selection is plain (scalar fields of Event, aliases allowed,
no fragments or directives), its result for one event is the same for every subscriber. Over
graphql-transport-ws the resolver then renders and encodes it once per event and process
(`_SHARED`) and sends the frame itself (realtime/frames.py) instead of yielding it to be executed
per subscriber; the frames are byte for byte the ones strawberry would send. Anything else, and
any event that does not render, takes the general path (yield).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Annotated, Any

import strawberry
from asgiref.sync import sync_to_async
from django.conf import settings
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    get_named_type,
)
from strawberry import relay

from domain.accounts.models import Permission
from domain.accounts.selectors import require_permission
from domain.assets import selectors as assets
from domain.assets.models import Asset
from domain.common.errors import DomainError
from domain.common.ids import pk_of
from domain.common.text import column_limit
from domain.jobs import selectors as jobs
from domain.jobs.models import Event, Job
from domain.jobs.stats import job_stats
from domain.jobs.visibility import event_visible_to
from realtime import groups
from realtime.checks import SharedChecks
from realtime.frames import FrameSender, SharedPayloads, frame_sender
from realtime.listen import IDLE, Lagging, Listener, listen
from schema.context import Info, actor_of
from schema.errors import decode_id, graphql_error
from schema.limits import text_limit
from schema.types.assets import AssetType
from schema.types.jobs import EventType, JobFilter, JobStatsType, JobType

REPLAY_PAGE = 500
STATS_MIN_INTERVAL = 0.5


class CursorExpired(DomainError):
    code = "CURSOR_EXPIRED"


class CursorInvalid(DomainError):
    code = "CURSOR_INVALID"


RESUME_AFTER = "subscribe again with `after` set to resumeAfter"


def too_slow(cursor: int | None, advice: str = RESUME_AFTER) -> GraphQLError:
    return GraphQLError(
        f"You fell too far behind; {advice}.",
        extensions={"code": "SUBSCRIBER_TOO_SLOW", "resumeAfter": cursor},
    )


def _authorise_events(
    info: Info, workspace_id: relay.GlobalID, after: int | None
) -> tuple[int, int]:
    pk = decode_id(workspace_id, "Workspace", path="workspaceId")
    require_permission(actor=actor_of(info), workspace_id=pk, needed=Permission.READ)
    return pk, _start_cursor(pk, after)


def _start_cursor(workspace_pk: int, after: int | None) -> int:
    """The sequence a subscription of the workspace's events starts after: `after`, checked, or
    the last one now."""
    last, pruned_through = jobs.event_cursor_state(workspace_id=workspace_pk)
    if after is not None and not 0 <= after <= last:
        # Live events up to it would be taken for replayed ones and dropped.
        raise CursorInvalid(
            f"The workspace has no event {after} (its last is {last}). Subscribe with a "
            "sequence you received, or without `after`.",
            path=["after"],
        )
    if after is not None and after < pruned_through:
        raise CursorExpired(
            f"Events up to {pruned_through} were pruned; reload the current state, then "
            f"subscribe after {last}.",
            path=["after"],
        )
    return last if after is None else after


async def _replay(
    workspace_pk: int, after: int, through: int | None = None
) -> AsyncGenerator[EventType, None]:
    """Durable events after `after` (up to `through`, if given), in order, a page at a time: a
    cursor days behind is not read into memory at once."""
    while True:
        page = await sync_to_async(jobs.events_after)(
            workspace_id=workspace_pk, after=after, limit=REPLAY_PAGE
        )
        for event in page:
            if through is not None and event.sequence > through:
                return
            if event.sequence != after + 1:
                # A workspace's sequences have no holes but what pruning made: the events
                # after the cursor went between the check of the cursor and this read.
                raise graphql_error(
                    CursorExpired(
                        f"Events after {after} were pruned; reload the current state, then "
                        "subscribe again.",
                        path=["after"],
                    )
                )
            yield EventType.from_model(event)
            after = event.sequence
        if len(page) < REPLAY_PAGE:
            return


def _job_state(job: Job) -> tuple[Any, ...]:
    return (job.state, job.progress_done, job.progress_total, job.progress_stage, job.updated_at)


# The last sequence of a workspace, read once per workspace and half idle interval by all of a
# process's idle events() subscriptions.
_LAST_SEQUENCES = SharedChecks()


async def _last_sequence(workspace_pk: int) -> int:
    def read() -> Any:
        return sync_to_async(jobs.event_cursor_state)(workspace_id=workspace_pk)

    since = time.monotonic() - settings.DEPOT_WS_IDLE_CHECK_SECONDS / 2
    last, _ = await _LAST_SEQUENCES.run(("last sequence", workspace_pk), since, read)
    return int(last)


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
        "those types (e.g. job.succeeded) or prefixes ending in a dot (e.g. asset.). Token "
        "events only for those who see the token in Workspace.apiTokens."
    )
    async def events(
        self,
        info: Info,
        workspace_id: relay.GlobalID,
        after: int | None = None,
        # A subscriber keeps its types for as long as it is open: far more than the types
        # there are would only hold its socket's memory.
        types: Annotated[
            list[str] | None,
            strawberry.argument(metadata=text_limit(column_limit(Event, "type"), items=100)),
        ] = None,
    ) -> AsyncGenerator[EventType, None]:
        workspace_pk, cursor = await _authorised(
            lambda: _authorise_events(info, workspace_id, after)
        )
        wanted = _events_wanted(info, workspace_pk, _type_matcher(types))
        group = groups.workspace_events(workspace_pk)
        consumer = info.context.ws
        shared = _SharedEvents.for_info(info, consumer) if SHARED_RENDER else None
        async with listen(
            consumer,
            groups.EVENT_MESSAGE,
            [group],
            settings.DEPOT_WS_BACKLOG,
            idle_after=settings.DEPOT_WS_IDLE_CHECK_SECONDS,
            only=("workspace_id", workspace_pk),
        ) as live:
            stream = _EventStream(workspace_pk, cursor, wanted, live)
            try:
                async with aclosing(stream.items()) as items:
                    async for item in items:
                        if shared is not None and await shared.send(workspace_pk, item):
                            continue
                        # The general path (and the fallback for an event that did not
                        # render, which Depot's events never do): strawberry executes it.
                        yield item if isinstance(item, EventType) else EventType.from_message(item)
            except Lagging:
                raise too_slow(stream.cursor) from None

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
            info.context.ws,
            groups.JOB_MESSAGE,
            [group],
            settings.DEPOT_WS_BACKLOG,
            idle_after=settings.DEPOT_WS_IDLE_CHECK_SECONDS,
            only=("job_id", job.pk),
        ) as live:
            # Read after joining the group, so no change falls between the read and the join.
            job = await sync_to_async(load)()
            yield job  # type: ignore[misc]
            if job.is_final:
                return
            try:
                async for message in live:
                    seen = _job_state(job)
                    job = await sync_to_async(load)()
                    if message is IDLE and _job_state(job) == seen:
                        continue  # nothing was lost
                    yield job  # type: ignore[misc]
                    if job.is_final:
                        return
            except Lagging:
                raise too_slow(None, "subscribe again: the job's state comes first") from None

    @strawberry.subscription(
        description="Changes to the jobs of a workspace that match the filter: each changed "
        "job as it is now (state changes and progress, a few updates a second per job at most). "
        "`after` (an events sequence, e.g. Workspace.eventSequence read with the jobs): first "
        "the jobs whose state changed since, then live ones; state changes are never lost "
        "(they are durable events), and SUBSCRIBER_TOO_SLOW carries the cursor to resume from."
    )
    async def jobs(
        self,
        info: Info,
        workspace_id: relay.GlobalID,
        filters: JobFilter | None = None,
        after: int | None = None,
    ) -> AsyncGenerator[JobType, None]:
        import strawberry_django

        workspace_pk, cursor = await _authorised(
            lambda: _authorise_events(info, workspace_id, after)
        )

        def load(job_id: int) -> Job | None:
            queryset = jobs.job_list_for(actor=actor_of(info)).filter(
                pk=job_id, workspace_id=workspace_pk
            )
            if filters is not None:
                queryset = strawberry_django.filters.apply(filters, queryset, info)
            return queryset.first()

        # State changes come as the workspace's job events (durable: replayed, gaps filled, a
        # cursor to resume from); progress as the live-only nudges of its jobs group, in the
        # same queue. A state change is both: its nudge says so (it carries the event's
        # sequence) and is skipped, and a job unchanged since it was last sent is not sent
        # again.
        async with listen(
            info.context.ws,
            (groups.EVENT_MESSAGE, groups.JOB_MESSAGE),
            [groups.workspace_events(workspace_pk), groups.workspace_jobs(workspace_pk)],
            settings.DEPOT_WS_BACKLOG,
            idle_after=settings.DEPOT_WS_IDLE_CHECK_SECONDS,
            only=("workspace_id", workspace_pk),
        ) as live:
            stream = _EventStream(workspace_pk, cursor, _is_job_event, live)
            sent = _LastSent()
            try:
                async with aclosing(stream.items()) as items:
                    async for item in items:
                        if _nudge_of_an_event(item):
                            continue  # its event, heard too, reads the job
                        job_id = _job_id_of(item)
                        job = None if job_id is None else await sync_to_async(load)(job_id)
                        if job is not None and sent.changed(job):
                            yield job  # type: ignore[misc]
            except Lagging:
                raise too_slow(stream.cursor) from None

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
            info.context.ws,
            groups.JOB_MESSAGE,
            [group],
            settings.DEPOT_WS_BACKLOG,
            only=("workspace_id", workspace_pk),
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
                    live.drain()
                    stats = await current()
                    last_sent = time.monotonic()
                    if stats != previous:
                        previous = stats
                        yield stats
            except Lagging:
                raise too_slow(None, "subscribe again: the current stats come first") from None

    @strawberry.subscription(
        description="Assets of a collection as they are created, uploaded, processed, updated, "
        "moved in or out, or deleted: those after `after` (an events sequence; replayed), then "
        "live ones, each once and in order, as events() gives them. Completes once the "
        "collection is deleted."
    )
    async def asset_changed(
        self, info: Info, collection_id: relay.GlobalID, after: int | None = None
    ) -> AsyncGenerator[AssetChange, None]:
        def authorise() -> tuple[int, int, int]:
            pk = decode_id(collection_id, "Collection", path="collectionId")
            collection = assets.collection_get_for(actor=actor_of(info), collection_id=pk)
            workspace_pk = collection.workspace_id
            return collection.pk, workspace_pk, _start_cursor(workspace_pk, after)

        collection_pk, workspace_pk, cursor = await _authorised(authorise)
        wanted_collection = str(relay.GlobalID("Collection", str(collection_pk)))

        def of_the_collection(event_type: str, payload: Any) -> bool:
            if event_type != "collection.deleted" and not event_type.startswith("asset."):
                return False
            return wanted_collection in (
                payload.get("collectionId"),
                payload.get("fromCollectionId"),  # a move out of it
            )

        def load(asset_id: relay.GlobalID) -> Asset | None:
            return (
                assets.asset_list_for(actor=actor_of(info)).filter(pk=int(asset_id.node_id)).first()
            )

        async with listen(
            info.context.ws,
            groups.EVENT_MESSAGE,
            [groups.workspace_events(workspace_pk)],
            settings.DEPOT_WS_BACKLOG,
            idle_after=settings.DEPOT_WS_IDLE_CHECK_SECONDS,
            only=("workspace_id", workspace_pk),
        ) as live:
            stream = _EventStream(workspace_pk, cursor, of_the_collection, live)
            try:
                async with aclosing(stream.items()) as items:
                    async for item in items:
                        event = (
                            item if isinstance(item, EventType) else EventType.from_message(item)
                        )
                        if event.type == "collection.deleted":
                            return
                        payload: dict[str, Any] = event.payload  # type: ignore[assignment]
                        asset_id = relay.GlobalID.from_id(payload["assetId"])
                        yield AssetChange(
                            type=event.type,
                            sequence=event.sequence,
                            asset_id=asset_id,
                            asset=await sync_to_async(load)(asset_id),  # type: ignore[arg-type]
                        )
            except Lagging:
                raise too_slow(stream.cursor) from None


class _EventStream:
    """Durable events after the cursor (replayed from Postgres), then live ones, each once and in
    order: live messages at or below the cursor are dropped, a gap is filled from Postgres, and
    so is a lost last event, once the subscription has heard nothing for a while (IDLE).

    Yields EventType (replayed) or the live message itself (a dict), whichever is cheaper to
    hand on, and any other message the listener hears as it comes; `cursor` is the last
    sequence passed, for SUBSCRIBER_TOO_SLOW."""

    def __init__(
        self, workspace_pk: int, cursor: int, wanted: Callable[[str, Any], bool], live: Listener
    ) -> None:
        # `live` hears only this workspace's events (Listener.only).
        self.workspace_pk = workspace_pk
        self.cursor = cursor
        self.wanted = wanted
        self.live = live

    async def items(self) -> AsyncGenerator[EventType | dict[str, Any], None]:
        workspace_pk, wanted = self.workspace_pk, self.wanted
        async with aclosing(_replay(workspace_pk, self.cursor)) as replayed:
            async for event in replayed:
                self.cursor = event.sequence
                if wanted(event.type, event.payload):
                    yield event
        async for message in self.live:
            if message is not IDLE and message["type"] != groups.EVENT_MESSAGE:
                yield message  # another kind the listener also hears (jobs(): progress)
                continue
            if message is IDLE:
                # Nothing heard for a while: a lost last event would otherwise wait for the next.
                sequence = await _last_sequence(workspace_pk)
                if sequence <= self.cursor:
                    continue
            else:
                sequence = message["sequence"]
                if sequence <= self.cursor:
                    continue
            if message is IDLE or sequence > self.cursor + 1:
                async with aclosing(_replay(workspace_pk, self.cursor, through=sequence)) as gap:
                    async for event in gap:
                        self.cursor = event.sequence
                        if wanted(event.type, event.payload):
                            yield event
                continue
            self.cursor = sequence
            if wanted(message["event_type"], message["payload"]):
                yield message


# Off: every events() subscription takes the general path (tests compare the two).
SHARED_RENDER = True
_SHARED = SharedPayloads()
_EVENT_ATTRIBUTES: dict[str, str] | None = None


def _event_attributes(info: Info) -> dict[str, str]:
    """GraphQL field name -> EventType attribute, for fields strawberry reads as plain data."""
    global _EVENT_ATTRIBUTES
    if _EVENT_ATTRIBUTES is None:
        converter = info.schema.config.name_converter
        _EVENT_ATTRIBUTES = {
            converter.get_graphql_name(field): field.python_name
            for field in EventType.__strawberry_definition__.fields  # type: ignore[attr-defined]
            if field.base_resolver is None
            and not field.extensions
            and not field.permission_classes
            and not field.directives
        }
    return _EVENT_ATTRIBUTES


@dataclass(frozen=True)
class _SharedEvents:
    """events() results rendered once per event for every subscriber with the same selection."""

    sender: FrameSender
    root: str
    # (response key, EventType attribute or None for __typename, serializer)
    fields: tuple[tuple[str, str | None, Any], ...]
    typename: str
    key: tuple[Any, ...]

    @classmethod
    def for_info(cls, info: Info, consumer: Any) -> _SharedEvents | None:
        sender = frame_sender(consumer)
        if sender is None:
            return None
        raw = info._raw_info
        if len(raw.field_nodes) != 1:
            return None
        node = raw.field_nodes[0]
        object_type = get_named_type(raw.return_type)
        if node.directives or node.selection_set is None:
            return None
        if not isinstance(object_type, GraphQLObjectType):
            return None
        attributes = _event_attributes(info)
        fields: list[tuple[str, str | None, Any]] = []
        for selection in node.selection_set.selections:
            if not isinstance(selection, FieldNode):
                return None  # fragments: the general path
            if selection.directives or selection.arguments or selection.selection_set:
                return None
            name = selection.name.value
            key = selection.alias.value if selection.alias else name
            if any(key == seen for seen, _, _ in fields):
                return None  # merged duplicates: the general path
            if name == "__typename":
                fields.append((key, None, None))
                continue
            field = object_type.fields.get(name)
            attribute = attributes.get(name)
            if field is None or attribute is None:
                return None
            leaf = field.type.of_type if isinstance(field.type, GraphQLNonNull) else None
            if not isinstance(leaf, GraphQLScalarType):
                return None
            fields.append((key, attribute, leaf.serialize))
        root = node.alias.value if node.alias else node.name.value
        shape = (root, tuple((key, attribute) for key, attribute, _ in fields))
        return cls(
            sender=sender,
            root=root,
            fields=tuple(fields),
            typename=object_type.name,
            key=(type(consumer), shape),
        )

    def render(self, event: EventType) -> str | None:
        values: dict[str, Any] = {}
        for key, attribute, serialize in self.fields:
            if attribute is None:
                values[key] = self.typename
                continue
            value = getattr(event, attribute)
            value = None if value is None else serialize(value)
            if value is None:
                return None  # a null in a non-null field: an error only execution can report
            values[key] = value
        return str(self.sender.encode({"data": {self.root: values}}))

    async def send(self, workspace_pk: int, item: EventType | dict[str, Any]) -> bool:
        # Replayed and live copies of one event are rendered apart: Postgres' jsonb may order
        # the payload's keys differently from the message, and each must match what the
        # general path would send for it.
        if isinstance(item, EventType):
            key: tuple[Any, ...] = (self.key, workspace_pk, item.sequence, "db")
        else:
            key = (self.key, workspace_pk, item["sequence"], "live")
        payload = _SHARED.get(key)
        if payload is None:
            try:
                event = item if isinstance(item, EventType) else EventType.from_message(item)
                payload = self.render(event)
            except Exception:
                payload = None
            if payload is None:
                return False
            _SHARED.put(key, payload)
        await self.sender.send(payload)
        return True


def _is_job_event(event_type: str, payload: Any) -> bool:
    return event_type.startswith("job.") and isinstance(payload, dict) and "jobId" in payload


def _nudge_of_an_event(item: EventType | dict[str, Any]) -> bool:
    return isinstance(item, dict) and item["type"] == groups.JOB_MESSAGE and "sequence" in item


def _job_id_of(item: EventType | dict[str, Any]) -> int | None:
    """The job a job event (replayed or live) or a jobs group's nudge is about."""
    if isinstance(item, dict) and item.get("job_id") is not None:
        return int(item["job_id"])
    payload = item.payload if isinstance(item, EventType) else item["payload"]
    return pk_of(payload.get("jobId"), "Job")  # type: ignore[union-attr]


class _LastSent:
    """What jobs() last sent of its most recent jobs: a change heard twice (its event and its
    nudge) or a nudge with nothing new is not sent again."""

    SIZE = 1000

    def __init__(self) -> None:
        self._states: collections.OrderedDict[int, tuple[Any, ...]] = collections.OrderedDict()

    def changed(self, job: Job) -> bool:
        state = _job_state(job)
        if self._states.get(job.pk) == state:
            return False
        self._states[job.pk] = state
        self._states.move_to_end(job.pk)
        if len(self._states) > self.SIZE:
            self._states.popitem(last=False)
        return True


def _events_wanted(
    info: Info, workspace_pk: int, by_type: Callable[[str, Any], bool]
) -> Callable[[str, Any], bool]:
    """The subscriber's filter: the types asked for, and only events it may see (token events:
    domain.jobs.visibility). Applied where the type filter is, after the cursor moved past the
    event and after _replay's hole check, and before _SharedEvents: a frame rendered once is
    sent only to those who may see it. The actor is read per event: a re-check may change it."""

    def wanted(event_type: str, payload: Any) -> bool:
        return by_type(event_type, payload) and event_visible_to(
            actor_of(info), workspace_id=workspace_pk, type=event_type, payload=payload
        )

    return wanted


def _type_matcher(types: list[str] | None) -> Callable[[str, Any], bool]:
    """events(types:) as a filter of (type, payload)."""
    if not types:
        return lambda _type, _payload: True
    exact = {t for t in types if not t.endswith(".")}
    prefixes = tuple(t for t in types if t.endswith("."))
    return lambda event_type, _payload: event_type in exact or event_type.startswith(prefixes)
