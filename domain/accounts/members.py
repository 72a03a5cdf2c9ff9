"""Workspaces and the people in them: create, add, change roles, remove, leave."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from domain.accounts.actor import Actor
from domain.accounts.errors import LastOwner, UserNotFound
from domain.accounts.models import Membership, Permission, Role, User, Workspace
from domain.accounts.selectors import require_permission
from domain.accounts.services import workspace_create
from domain.accounts.tokens_service import tokens_revoke_for_member
from domain.common.errors import DomainError, Forbidden, NotFound
from domain.common.ids import global_id
from domain.common.text import column_limit, require_length
from domain.jobs import events
from realtime import publish


def workspace_create_for(*, actor: Actor, name: str, slug: str) -> Workspace:
    """A signed-in user creates a workspace and owns it (tokens cannot: they are per workspace)."""
    if actor.user is None or actor.token is not None:
        raise Forbidden("Only a signed-in user can create a workspace.")
    if not name.strip():
        raise DomainError("A name is required.", code="INVALID_INPUT", path=["name"])
    return workspace_create(name=name.strip(), slug=slug.strip().lower(), owner=actor.user)


# A login is a username or an email: longer than both columns, it names nobody.
_LOGIN_MAX_LENGTH = max(column_limit(User, "username"), column_limit(User, "email"))


def _membership_event(membership: Membership, type: str) -> None:
    events.record(
        membership.workspace_id,
        type,
        {
            "workspaceId": global_id("Workspace", membership.workspace_id),
            "userId": global_id("User", membership.user_id),
            "role": membership.role,
        },
    )


def _locked(membership: Membership) -> Membership:
    """The membership, re-read under locks that make its workspace's owner changes take turns.

    Each change of an owner counts the other owners; two owners demoting or removing each other
    at once would both still see the other and leave the workspace with none. The workspace's
    row lock (NO KEY: rows that refer to the workspace can still be written meanwhile) puts them
    one after the other, and the second counts what the first committed."""
    Workspace.objects.select_for_update(no_key=True).filter(pk=membership.workspace_id).exists()
    return Membership.objects.select_for_update().get(pk=membership.pk)


def _other_owners(membership: Membership) -> bool:
    return (
        Membership.objects.filter(workspace_id=membership.workspace_id, role=Role.OWNER)
        .exclude(pk=membership.pk)
        .exists()
    )


@transaction.atomic
def member_add(*, workspace: Workspace, login: str, role: Role, actor: Actor) -> Membership:
    """Add an existing user, found by username or email, with a role (owners only)."""
    require_permission(actor=actor, workspace_id=workspace.pk, needed=Permission.ADMIN)
    require_length(login, limit=_LOGIN_MAX_LENGTH, path=["login"])
    user = User.objects.filter(Q(username=login) | Q(email__iexact=login), is_active=True).first()
    if user is None or not login.strip():
        raise UserNotFound("No user with that username or email.", path=["login"])
    membership, created = Membership.objects.get_or_create(
        workspace=workspace, user=user, defaults={"role": role}
    )
    if not created and membership.role != role:
        return member_role_change(membership=membership, role=role, actor=actor)
    if created:
        _membership_event(membership, "member.added")
    return membership


@transaction.atomic
def member_role_change(*, membership: Membership, role: Role, actor: Actor) -> Membership:
    require_permission(actor=actor, workspace_id=membership.workspace_id, needed=Permission.ADMIN)
    membership = _locked(membership)
    if membership.role == Role.OWNER and role != Role.OWNER and not _other_owners(membership):
        raise LastOwner("The workspace needs another owner first.", path=["role"])
    membership.role = role
    membership.save(update_fields=["role"])
    publish.credentials_changed_after_commit(membership.user_id)
    _membership_event(membership, "member.role_changed")
    return membership


@transaction.atomic
def member_remove(*, membership: Membership, actor: Actor) -> None:
    """Owners remove anyone; anyone may remove themselves (leave)."""
    leaving = actor.user is not None and membership.user_id == actor.user.pk
    needed = Permission.READ if leaving else Permission.ADMIN
    require_permission(actor=actor, workspace_id=membership.workspace_id, needed=needed)
    membership = _locked(membership)
    if membership.role == Role.OWNER and not _other_owners(membership):
        raise LastOwner("The last owner cannot leave; make someone else owner first.")
    # Their tokens there acted through this membership: dead with it (and the sockets opened
    # with them close, through the nudge below, as after apiTokenRevoke). Revoked before the
    # deletion, which would revoke them too but without their token.revoked events; and
    # before member.removed: token locks first, then the workspace's event counter, as
    # apiTokenRevoke takes them (the other order deadlocked with a revoke of the member's
    # token).
    tokens_revoke_for_member(workspace_id=membership.workspace_id, user_id=membership.user_id)
    membership.delete()
    _membership_event(membership, "member.removed")
    publish.credentials_changed_after_commit(membership.user_id)


def membership_get_for(*, actor: Actor, workspace_id: int, user_id: int) -> Membership:
    require_permission(actor=actor, workspace_id=workspace_id, needed=Permission.READ)
    membership = Membership.objects.filter(workspace_id=workspace_id, user_id=user_id).first()
    if membership is None:
        raise NotFound("No such member.", path=["userId"])
    return membership
