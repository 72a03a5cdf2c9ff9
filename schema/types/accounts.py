from __future__ import annotations

from enum import Enum

import strawberry
import strawberry_django
from strawberry import relay
from strawberry_django.relay import DjangoListConnection

from domain.accounts.models import Membership, Permission, User, Workspace
from domain.jobs.selectors import event_cursor_state
from schema.context import Info, actor_of
from schema.scalars import BigInt
from schema.types.assets import CollectionType


@strawberry.enum(name="Permission", description="What the caller may do in a workspace.")
class PermissionEnum(Enum):
    READ = "READ"
    WRITE = "WRITE"
    ADMIN = "ADMIN"


@strawberry_django.type(Workspace, name="Workspace", description="A tenant: it owns everything.")
class WorkspaceType(relay.Node):
    name: str = strawberry_django.field(description="The workspace's display name.")
    slug: str = strawberry_django.field(description="A short unique handle.")
    created_at: strawberry.auto = strawberry_django.field(description="When it was created.")
    collections: DjangoListConnection[CollectionType] = strawberry_django.connection(
        description="The workspace's collections, by name."
    )

    @strawberry_django.field(
        description="The sequence of the workspace's latest durable event: subscribe to "
        "`events` with `after` set to it to get everything from this moment on.",
    )
    def event_sequence(self) -> BigInt:
        last, _ = event_cursor_state(workspace_id=self.pk)  # type: ignore[attr-defined]
        return BigInt(last)

    @strawberry_django.field(description="What you may do here, through this session or token.")
    def permission(self, info: Info) -> PermissionEnum:
        granted = actor_of(info).permissions.get(self.pk, Permission.READ)  # type: ignore[attr-defined]
        return PermissionEnum[Permission(granted).name]


@strawberry_django.type(Membership, name="Membership", description="A user's role in a workspace.")
class MembershipType:
    role: str = strawberry_django.field(description="owner, editor or viewer.")
    workspace: WorkspaceType = strawberry_django.field(description="The workspace.")


@strawberry_django.type(User, name="Viewer", description="The signed-in user or token owner.")
class ViewerType:
    username: str = strawberry_django.field(description="The user's login name.")
    email: str = strawberry_django.field(description="The user's email address.")

    @strawberry_django.field(
        description="Your memberships (through a token: only the token's workspace)."
    )
    def memberships(self, info: Info) -> list[MembershipType]:
        ids = actor_of(info).workspace_ids()
        return Membership.objects.filter(user=self, workspace_id__in=ids).select_related(  # type: ignore[return-value,misc]
            "workspace"
        )
