from __future__ import annotations

from collections.abc import Iterable

import strawberry
import strawberry_django
from asgiref.sync import sync_to_async
from strawberry import relay
from strawberry_django.relay import DjangoListConnection

from domain.accounts import selectors as accounts
from domain.accounts.models import Permission, User, Workspace
from domain.assets import selectors as assets
from domain.assets.models import Asset, Collection
from domain.common.errors import NotFound
from domain.jobs import selectors as jobs
from domain.jobs.models import Job
from domain.jobs.stats import job_stats
from schema.context import Info, actor_of
from schema.errors import as_graphql_errors, decode_id
from schema.fields import IdsOfNothingAreMissing, one_object
from schema.types.accounts import ViewerType, WorkspaceType
from schema.types.assets import (
    AssetFilter,
    AssetOrder,
    AssetType,
    CollectionFilter,
    CollectionOrder,
    CollectionType,
)
from schema.types.jobs import EventType, JobFilter, JobOrder, JobStatsType, JobType
from schema.types.scoping import in_memory


def _in_workspace(info: Info, workspace_id: relay.GlobalID | None) -> int | None:
    if workspace_id is None:
        return None
    pk = decode_id(workspace_id, "Workspace", path="workspaceId")
    accounts.require_permission(actor=actor_of(info), workspace_id=pk, needed=Permission.READ)
    return pk


def _pk_or_none(global_id: relay.GlobalID, type_name: str) -> int:
    """The primary key; for a malformed id or one of another type, a key no row has, so the
    lookup finds nothing, exactly as for an id that does not exist."""
    try:
        return decode_id(global_id, type_name)
    except NotFound:
        return 0


# Fields for one object return the QuerySet filtered to its key, not the row: strawberry-django
# then runs the type's get_queryset and the optimizer on it (only the selected columns,
# relations prefetched in the same thread hop) and schema.fields.OneObjectField takes the row,
# None when nothing matches.
@strawberry.type(description="Reads. Everything is scoped to the caller's workspaces.")
class Query:
    node: relay.Node | None = strawberry_django.node(
        description="Any object by its global id; null if you cannot see it.",
        extensions=[IdsOfNothingAreMissing()],
    )
    nodes: list[relay.Node | None] = strawberry_django.node(
        description="Objects by their global ids, in the same order; null where you cannot see "
        "one.",
        extensions=[IdsOfNothingAreMissing()],
    )

    @strawberry_django.field(description="The caller: null when not signed in.")
    def viewer(self, info: Info) -> ViewerType | None:
        user: User | None = actor_of(info).user
        return user  # type: ignore[return-value]

    @strawberry_django.connection(
        DjangoListConnection[WorkspaceType], description="Workspaces you can see."
    )
    @in_memory
    def workspaces(self, info: Info) -> Iterable[Workspace]:
        return accounts.workspace_list_for(actor=actor_of(info))

    @one_object(description="One workspace, or null if you cannot see it.")
    @in_memory
    def workspace(self, info: Info, id: relay.GlobalID) -> WorkspaceType | None:
        return accounts.workspace_list_for(actor=actor_of(info)).filter(
            pk=_pk_or_none(id, "Workspace")
        )  # type: ignore[return-value]

    @strawberry_django.connection(
        DjangoListConnection[CollectionType],
        description="Collections you can see, by name unless ordered otherwise.",
        filters=CollectionFilter,
        ordering=CollectionOrder,
    )
    @in_memory
    def collections(
        self, info: Info, workspace_id: relay.GlobalID | None = None
    ) -> Iterable[Collection]:
        with as_graphql_errors():
            workspace_pk = _in_workspace(info, workspace_id)
        queryset = assets.collection_list_for(actor=actor_of(info))
        return queryset if workspace_pk is None else queryset.filter(workspace_id=workspace_pk)

    @one_object(description="One collection, or null if you cannot see it.")
    @in_memory
    def collection(self, info: Info, id: relay.GlobalID) -> CollectionType | None:
        return assets.collection_list_for(actor=actor_of(info)).filter(
            pk=_pk_or_none(id, "Collection")
        )  # type: ignore[return-value]

    @strawberry_django.connection(
        DjangoListConnection[AssetType],
        description="Assets you can see, newest first unless ordered otherwise.",
        filters=AssetFilter,
        ordering=AssetOrder,
    )
    @in_memory
    def assets(
        self,
        info: Info,
        workspace_id: relay.GlobalID | None = None,
        collection_id: relay.GlobalID | None = None,
    ) -> Iterable[Asset]:
        with as_graphql_errors():
            workspace_pk = _in_workspace(info, workspace_id)
        queryset = assets.asset_list_for(actor=actor_of(info))
        if workspace_pk is not None:
            queryset = queryset.filter(workspace_id=workspace_pk)
        if collection_id is not None:
            queryset = queryset.filter(collection_id=_pk_or_none(collection_id, "Collection"))
        return queryset

    @one_object(description="One asset, or null if you cannot see it.")
    @in_memory
    def asset(self, info: Info, id: relay.GlobalID) -> AssetType | None:
        return assets.asset_list_for(actor=actor_of(info)).filter(pk=_pk_or_none(id, "Asset"))  # type: ignore[return-value]

    @strawberry_django.connection(
        DjangoListConnection[JobType],
        description="Jobs you can see, newest first unless ordered otherwise.",
        filters=JobFilter,
        ordering=JobOrder,
    )
    @in_memory
    def jobs(self, info: Info, workspace_id: relay.GlobalID | None = None) -> Iterable[Job]:
        with as_graphql_errors():
            workspace_pk = _in_workspace(info, workspace_id)
        queryset = jobs.job_list_for(actor=actor_of(info))
        return queryset if workspace_pk is None else queryset.filter(workspace_id=workspace_pk)

    @one_object(description="One job, or null if you cannot see it.")
    @in_memory
    def job(self, info: Info, id: relay.GlobalID) -> JobType | None:
        return jobs.job_list_for(actor=actor_of(info)).filter(pk=_pk_or_none(id, "Job"))  # type: ignore[return-value]

    @strawberry_django.field(
        description="Jobs per state and lane, and finished jobs per minute over the last "
        "`windowMinutes` (at most 60), for dashboards."
    )
    def job_stats(
        self, info: Info, workspace_id: relay.GlobalID, window_minutes: int = 15
    ) -> JobStatsType:
        with as_graphql_errors():
            pk = _in_workspace(info, workspace_id)
        assert pk is not None
        window = max(1, min(window_minutes, 60))
        return JobStatsType.from_domain(job_stats(workspace_id=pk, window_minutes=window))

    @strawberry.field(
        description="Durable events after a cursor, oldest first (at most 500; fewer only at "
        "the end). Token events only for those who see the token in Workspace.apiTokens."
    )
    async def events(
        self, info: Info, workspace_id: relay.GlobalID, after: int = 0, first: int = 100
    ) -> list[EventType]:
        with as_graphql_errors():
            pk = await sync_to_async(_in_workspace)(info, workspace_id)
        assert pk is not None
        page = await sync_to_async(jobs.events_visible_after)(
            actor=actor_of(info), workspace_id=pk, after=after, limit=max(1, min(first, 500))
        )
        return [EventType.from_model(event) for event in page]
