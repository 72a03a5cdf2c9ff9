from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry_django.relay import DjangoListConnection

from domain.accounts.models import ApiToken, Membership, Permission, User, Workspace
from domain.accounts.tokens_service import token_list_for, visible_tokens
from domain.assets.policy import media_settings_of
from domain.jobs.selectors import event_cursor_state
from schema.context import Info, actor_of
from schema.scalars import BigInt
from schema.types.assets import CollectionFilter, CollectionOrder, CollectionType
from schema.types.fields import model_connection, model_field
from schema.types.media import MediaSettingsType
from schema.types.scoping import DepotNode, in_memory, scoped_to_workspaces


@strawberry.enum(name="Permission", description="What the caller may do in a workspace.")
class PermissionEnum(Enum):
    READ = "READ"
    WRITE = "WRITE"
    ADMIN = "ADMIN"


@strawberry.enum(name="Role", description="A member's role: owner (admin), editor (write), viewer.")
class RoleEnum(Enum):
    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"


@strawberry.enum(name="TokenScope", description="What a token may do, capped by its user's role.")
class TokenScopeEnum(Enum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


@strawberry_django.type(User, name="User", description="A person, as other members see them.")
class UserType(DepotNode):
    username: str = model_field(description="Their login name.")

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: Info, **kwargs: Any) -> QuerySet[Any]:
        # Only people who share a workspace with the caller.
        ids = actor_of(info).workspace_ids()
        return queryset.filter(memberships__workspace_id__in=ids).distinct()


@strawberry_django.type(Membership, name="Membership", description="A user's role in a workspace.")
class MembershipType:
    user: UserType = model_field(description="The member.")
    workspace: WorkspaceType = model_field(description="The workspace.")
    created_at: datetime = model_field(description="When they joined.")

    get_queryset = scoped_to_workspaces("workspace_id")

    @strawberry_django.field(description="Their role.", only=["role"])
    @in_memory
    def role(self) -> RoleEnum:
        return RoleEnum(self.role)


@strawberry_django.type(ApiToken, name="ApiToken", description="An API token (never its secret).")
class ApiTokenType(DepotNode):
    name: str = model_field(description="What the token is for.")
    prefix: str = model_field(description="Its first characters, to recognise it.")
    expires_at: datetime | None = model_field(description="When it stops working.")
    last_used_at: datetime | None = model_field(description="When it was last used.")
    revoked_at: datetime | None = model_field(description="When it was revoked.")
    created_at: datetime = model_field(description="When it was made.")
    user: UserType = model_field(description="Whom it acts for.")

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: Info, **kwargs: Any) -> QuerySet[Any]:
        return queryset.filter(visible_tokens(actor_of(info)))

    @strawberry_django.field(description="Its scopes.", only=["scopes"])
    @in_memory
    def scopes(self) -> list[TokenScopeEnum]:
        return [TokenScopeEnum(scope) for scope in self.scopes]


@strawberry_django.type(Workspace, name="Workspace", description="A tenant: it owns everything.")
class WorkspaceType(DepotNode):
    name: str = model_field(description="The workspace's display name.")
    slug: str = model_field(description="A short unique handle.")
    created_at: datetime = model_field(description="When it was created.")
    collections: DjangoListConnection[CollectionType] = model_connection(
        description="The workspace's collections, by name unless ordered otherwise.",
        filters=CollectionFilter,
        ordering=CollectionOrder,
    )
    memberships: list[MembershipType] = model_field(description="Its members and their roles.")

    get_queryset = scoped_to_workspaces("pk")

    @strawberry_django.connection(
        DjangoListConnection[ApiTokenType],
        description="API tokens: all of them for owners, your own for others.",
    )
    def api_tokens(self, info: Info) -> list[ApiToken]:
        return token_list_for(actor=actor_of(info), workspace_id=self.pk)  # type: ignore[attr-defined,return-value]

    @strawberry_django.field(
        description="The sequence of the workspace's latest durable event: subscribe to "
        "`events` with `after` set to it to get everything from this moment on.",
    )
    def event_sequence(self) -> BigInt:
        last, _ = event_cursor_state(workspace_id=self.pk)  # type: ignore[attr-defined]
        return BigInt(last)

    @strawberry_django.field(
        description="What uploads it accepts and how it processes them (changed by owners "
        "with workspaceMediaSettingsUpdate).",
        only=["media_settings"],
    )
    @in_memory
    def media_settings(self) -> MediaSettingsType:
        return MediaSettingsType.from_domain(media_settings_of(self))  # type: ignore[arg-type]

    @strawberry_django.field(description="What you may do here, through this session or token.")
    def permission(self, info: Info) -> PermissionEnum:
        granted = actor_of(info).permissions.get(self.pk, Permission.READ)  # type: ignore[attr-defined]
        return PermissionEnum[Permission(granted).name]


@strawberry_django.type(User, name="Viewer", description="The signed-in user or token owner.")
class ViewerType:
    username: str = model_field(description="The user's login name.")
    email: str = model_field(description="The user's email address.")

    @strawberry_django.field(
        description="Your memberships (through a token: only the token's workspace)."
    )
    def memberships(self, info: Info) -> list[MembershipType]:
        ids = actor_of(info).workspace_ids()
        memberships = Membership.objects.filter(user_id=self.pk, workspace_id__in=ids)  # type: ignore[attr-defined]
        return memberships.select_related("workspace")  # type: ignore[return-value]

    @strawberry_django.field(description="The token this request uses, if any.")
    def token(self, info: Info) -> ApiTokenType | None:
        return actor_of(info).token  # type: ignore[return-value]
