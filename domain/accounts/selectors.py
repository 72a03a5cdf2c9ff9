from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from domain.accounts.actor import Actor
from domain.accounts.errors import InvalidToken
from domain.accounts.models import (
    ROLE_PERMISSION,
    ApiToken,
    Membership,
    Permission,
    Role,
    Workspace,
)
from domain.accounts.tokens import TOKEN_PREFIX, hash_secret
from domain.common.errors import Forbidden, NotFound


def workspace_list_for(*, actor: Actor) -> QuerySet[Workspace]:
    return Workspace.objects.filter(pk__in=actor.workspace_ids()).order_by("name", "pk")


def membership_list_for(*, actor: Actor) -> QuerySet[Membership]:
    return Membership.objects.filter(workspace_id__in=actor.workspace_ids())


def workspace_for(*, actor: Actor, workspace_id: int, needed: Permission) -> Workspace:
    """The workspace if the caller may act there; NOT_FOUND if they cannot see it at all."""
    require_permission(actor=actor, workspace_id=workspace_id, needed=needed)
    return Workspace.objects.get(pk=workspace_id)


def require_permission(*, actor: Actor, workspace_id: int, needed: Permission) -> None:
    """FORBIDDEN if the caller sees the workspace but may not do this; NOT_FOUND if not even
    that, so that another workspace is indistinguishable from one that does not exist."""
    if not actor.can(workspace_id, Permission.READ):
        raise NotFound("No such workspace.", path=["workspaceId"])
    if not actor.can(workspace_id, needed):
        raise Forbidden(f"This needs {needed.name.lower()} permission in the workspace.")


def actor_still_valid(*, actor: Actor, secret: str | None) -> Actor | None:
    """A fresh actor for an open connection, or None if its credentials were withdrawn.

    Its permissions are loaded here, so async callers never touch the database lazily."""
    if actor.user is None:
        return None
    if secret is not None:
        try:
            fresh = actor_from_bearer(secret=secret)
        except InvalidToken:
            return None
    else:
        user = type(actor.user).objects.filter(pk=actor.user.pk, is_active=True).first()
        if user is None:
            return None
        fresh = Actor(user=user)
    fresh.permissions  # noqa: B018 (loads them now)
    return fresh


def actor_from_bearer(*, secret: str) -> Actor:
    """The actor for an API token secret, or InvalidToken. Marks the token as used."""
    if not secret.startswith(TOKEN_PREFIX):
        raise InvalidToken("The API token is not valid.")
    # One statement: the token, its user, and the user's role in the token's workspace.
    role = Membership.objects.filter(
        user_id=OuterRef("user_id"), workspace_id=OuterRef("workspace_id")
    ).values("role")[:1]
    token = (
        ApiToken.objects.select_related("user")
        .annotate(member_role=Subquery(role))
        .filter(secret_hash=hash_secret(secret), revoked_at__isnull=True)
        .first()
    )
    now = timezone.now()
    if token is None or (token.expires_at is not None and token.expires_at <= now):
        raise InvalidToken("The API token is not valid.")
    if not token.user.is_active:
        raise InvalidToken("The API token is not valid.")
    # Coarse on purpose: one write a minute per token, not one per request.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    permissions: dict[int, Permission] = {}
    member_role = getattr(token, "member_role", None)
    if member_role is not None:
        permissions[token.workspace_id] = min(ROLE_PERMISSION[Role(member_role)], token.permission)
    return Actor(user=token.user, token=token, _permissions=permissions)
