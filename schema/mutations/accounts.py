from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay

from domain.accounts import members, tokens_service
from domain.accounts.models import ApiToken, Membership, Permission, Role, TokenScope, Workspace
from domain.accounts.selectors import workspace_for
from schema.context import Info, actor_of
from schema.errors import UserError, decode_id
from schema.mutations import attempt, either_mode
from schema.types.accounts import (
    ApiTokenType,
    MembershipType,
    RoleEnum,
    TokenScopeEnum,
    WorkspaceType,
)


def _workspace(info: Info, id: relay.GlobalID, needed: Permission = Permission.READ) -> Workspace:
    pk = decode_id(id, "Workspace", path="workspaceId")
    return workspace_for(actor=actor_of(info), workspace_id=pk, needed=needed)


def _membership(info: Info, workspace_id: relay.GlobalID, user_id: relay.GlobalID) -> Membership:
    return members.membership_get_for(
        actor=actor_of(info),
        workspace_id=decode_id(workspace_id, "Workspace", path="workspaceId"),
        user_id=decode_id(user_id, "User", path="userId"),
    )


@strawberry.type(description="The result of workspaceCreate.")
class WorkspacePayload:
    workspace: WorkspaceType | None = strawberry.field(description="The workspace.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="The result of a change to a membership.")
class MembershipPayload:
    membership: MembershipType | None = strawberry.field(description="The membership.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="The result of memberRemove or workspaceLeave.")
class RemovedPayload:
    removed: bool = strawberry.field(description="True if the membership is gone.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.input(description="A new API token.")
class ApiTokenCreateInput:
    workspace_id: relay.GlobalID = strawberry.field(description="Its workspace.")
    name: str = strawberry.field(description="What it is for.")
    scopes: list[TokenScopeEnum] = strawberry.field(description="What it may do.")
    expires_at: datetime | None = strawberry.field(
        default=None,
        description="When it expires, with its time zone. A token made with a token expires "
        "when that one does at the latest.",
    )


@strawberry.type(description="The result of apiTokenCreate: the secret appears here only.")
class ApiTokenCreatePayload:
    token: ApiTokenType | None = strawberry.field(description="The token.")
    secret: str | None = strawberry.field(
        description="The secret to send as `Authorization: Bearer ...`; it is never shown again."
    )
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="The result of apiTokenRevoke.")
class ApiTokenPayload:
    token: ApiTokenType | None = strawberry.field(description="The token.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type
class AccountMutations:
    @strawberry.mutation(description="Create a workspace; you become its owner (sessions only).")
    @either_mode
    def workspace_create(self, info: Info, name: str, slug: str) -> WorkspacePayload:
        def call() -> Workspace:
            return members.workspace_create_for(actor=actor_of(info), name=name, slug=slug)

        workspace, errors = attempt(info, call)
        return WorkspacePayload(workspace=workspace, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(
        description="Add an existing user (by username or email) with a role (owners only); "
        "for a member already there, this changes the role."
    )
    @either_mode
    def member_add(
        self, info: Info, workspace_id: relay.GlobalID, login: str, role: RoleEnum
    ) -> MembershipPayload:
        def call() -> Membership:
            return members.member_add(
                workspace=_workspace(info, workspace_id),
                login=login,
                role=Role(role.value),
                actor=actor_of(info),
            )

        membership, errors = attempt(info, call)
        return MembershipPayload(membership=membership, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(description="Change a member's role (owners only; one owner must remain).")
    @either_mode
    def member_role_change(
        self, info: Info, workspace_id: relay.GlobalID, user_id: relay.GlobalID, role: RoleEnum
    ) -> MembershipPayload:
        def call() -> Membership:
            return members.member_role_change(
                membership=_membership(info, workspace_id, user_id),
                role=Role(role.value),
                actor=actor_of(info),
            )

        membership, errors = attempt(info, call)
        return MembershipPayload(membership=membership, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(description="Remove a member (owners only; one owner must remain).")
    @either_mode
    def member_remove(
        self, info: Info, workspace_id: relay.GlobalID, user_id: relay.GlobalID
    ) -> RemovedPayload:
        def call() -> bool:
            members.member_remove(
                membership=_membership(info, workspace_id, user_id), actor=actor_of(info)
            )
            return True

        removed, errors = attempt(info, call)
        return RemovedPayload(removed=bool(removed), errors=errors)

    @strawberry.mutation(description="Leave a workspace (the last owner cannot).")
    @either_mode
    def workspace_leave(self, info: Info, workspace_id: relay.GlobalID) -> RemovedPayload:
        def call() -> bool:
            actor = actor_of(info)
            assert actor.user is not None
            membership = members.membership_get_for(
                actor=actor,
                workspace_id=decode_id(workspace_id, "Workspace", path="workspaceId"),
                user_id=actor.user.pk,
            )
            members.member_remove(membership=membership, actor=actor)
            return True

        removed, errors = attempt(info, call)
        return RemovedPayload(removed=bool(removed), errors=errors)

    @strawberry.mutation(
        description="Create an API token for yourself; its secret is in this payload only."
    )
    @either_mode
    def api_token_create(self, info: Info, input: ApiTokenCreateInput) -> ApiTokenCreatePayload:
        def call() -> tuple[ApiToken, str]:
            return tokens_service.token_issue(
                workspace=_workspace(info, input.workspace_id),
                name=input.name,
                scopes=[TokenScope(scope.value) for scope in input.scopes],
                expires_at=input.expires_at,
                actor=actor_of(info),
            )

        created, errors = attempt(info, call)
        if created is None:
            return ApiTokenCreatePayload(token=None, secret=None, errors=errors)
        token, secret = created
        return ApiTokenCreatePayload(token=token, secret=secret, errors=[])  # type: ignore[arg-type]

    @strawberry.mutation(description="Revoke a token: it stops working at once.")
    @either_mode
    def api_token_revoke(self, info: Info, id: relay.GlobalID) -> ApiTokenPayload:
        def call() -> ApiToken:
            actor = actor_of(info)
            token = tokens_service.token_get_for(actor=actor, token_id=decode_id(id, "ApiToken"))
            return tokens_service.token_revoke(token=token, actor=actor)

        token, errors = attempt(info, call)
        return ApiTokenPayload(token=token, errors=errors)  # type: ignore[arg-type]
