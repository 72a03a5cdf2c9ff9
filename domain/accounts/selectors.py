from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from domain.accounts.actor import Actor
from domain.accounts.errors import InvalidToken
from domain.accounts.models import (
    ROLE_PERMISSION,
    ApiToken,
    Membership,
    Permission,
    Role,
    User,
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
        user = User.objects.filter(pk=actor.user.pk, is_active=True).first()
        if user is None:
            return None
        fresh = Actor(user=user)
    fresh.permissions  # noqa: B018 (loads them now)
    return fresh


# Every authenticated API request runs this, so it is one hand-written statement: the token, the
# fields of its user that requests use, and the user's role in the token's workspace. (Built with
# the ORM, compiling the query cost more than running it: bench/http/PROFILE.md.)
_BEARER_LOOKUP_SQL = """
SELECT t.id, t.workspace_id, t.user_id, t.name, t.prefix, t.scopes, t.expires_at,
       t.last_used_at, t.revoked_at, t.created_at,
       u.username AS user_username, u.email AS user_email, u.is_active AS user_is_active,
       (SELECT m.role FROM accounts_membership m
         WHERE m.user_id = t.user_id AND m.workspace_id = t.workspace_id) AS member_role
  FROM accounts_apitoken t JOIN accounts_user u ON u.id = t.user_id
 WHERE t.secret_hash = %s AND t.revoked_at IS NULL
"""


def actor_from_bearer(*, secret: str) -> Actor:
    """The actor for an API token secret, or InvalidToken. Marks the token as used."""
    if not secret.startswith(TOKEN_PREFIX):
        raise InvalidToken("The API token is not valid.")
    token: Any = next(iter(ApiToken.objects.raw(_BEARER_LOOKUP_SQL, [hash_secret(secret)])), None)
    now = timezone.now()
    if token is None or (token.expires_at is not None and token.expires_at <= now):
        raise InvalidToken("The API token is not valid.")
    if not token.user_is_active:
        raise InvalidToken("The API token is not valid.")
    # Only what requests use: a User built from the same row, no second query.
    token.user = User(
        pk=token.user_id,
        username=token.user_username,
        email=token.user_email,
        is_active=True,
    )
    token.user._state.adding = False
    # Coarse on purpose: one write a minute per token, not one per request.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    permissions: dict[int, Permission] = {}
    member_role = getattr(token, "member_role", None)
    if member_role is not None:
        permissions[token.workspace_id] = min(ROLE_PERMISSION[Role(member_role)], token.permission)
    return Actor(user=token.user, token=token, _permissions=permissions)
