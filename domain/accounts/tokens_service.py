"""API tokens through the API: created (secret shown once), listed, revoked."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from domain.accounts.actor import Actor
from domain.accounts.credentials import credentials_changed
from domain.accounts.models import ApiToken, Membership, Permission, TokenScope, Workspace
from domain.accounts.selectors import require_permission
from domain.accounts.services import api_token_create, token_event_payload
from domain.common.errors import DomainError, Forbidden, InvalidState, NotFound
from domain.common.text import column_limit, require_length
from domain.jobs import events
from realtime import publish


def _may_manage_tokens(actor: Actor, workspace_id: int) -> None:
    # A session user manages their own tokens; a token needs the admin scope to make others,
    # so a leaked read or write token cannot mint more.
    needed = Permission.ADMIN if actor.token is not None else Permission.READ
    require_permission(actor=actor, workspace_id=workspace_id, needed=needed)
    if actor.user is None:
        raise Forbidden("Sign in to manage tokens.")


@transaction.atomic
def token_issue(
    *,
    workspace: Workspace,
    name: str,
    scopes: list[TokenScope],
    expires_at: datetime | None,
    actor: Actor,
) -> tuple[ApiToken, str]:
    _may_manage_tokens(actor, workspace.pk)
    if not name.strip():
        raise DomainError("A token needs a name.", code="INVALID_INPUT", path=["name"])
    require_length(name.strip(), limit=column_limit(ApiToken, "name"), path=["name"])
    if expires_at is not None and timezone.is_naive(expires_at):
        message = "Give the expiry with its time zone, e.g. 2030-01-01T00:00:00Z."
        raise DomainError(message, code="INVALID_INPUT", path=["expiresAt"])
    if expires_at is not None and expires_at <= timezone.now():
        raise DomainError("The expiry is in the past.", code="INVALID_INPUT", path=["expiresAt"])
    maker = actor.token.expires_at if actor.token is not None else None
    if maker is not None and (expires_at is None or expires_at > maker):
        # A token made by a token expires with it at the latest: a leaked short-lived admin
        # token must not mint one that lives for ever.
        expires_at = maker
    assert actor.user is not None
    # The membership the token acts through, locked until the token is in: a removal running
    # now either ends first (then there is none here) or waits for this and revokes the token.
    # Without it, a token issued as its user was removed could miss the removal's revoke, and
    # come back to life if the user was added again.
    member = Membership.objects.select_for_update(no_key=True).filter(
        workspace_id=workspace.pk, user_id=actor.user.pk
    )
    if member.values_list("pk", flat=True).first() is None:
        raise Forbidden("You are no longer a member of this workspace.")
    return api_token_create(
        workspace=workspace,
        user=actor.user,
        name=name.strip(),
        scopes=scopes,
        expires_at=expires_at,
    )


def visible_tokens(actor: Actor) -> Q:
    """Owners see every token of their workspaces; members see their own."""
    return Q(workspace_id__in=actor.workspace_ids(Permission.ADMIN)) | Q(
        user_id=actor.user.pk if actor.user else None, workspace_id__in=actor.workspace_ids()
    )


def may_see_token(actor: Actor, *, workspace_id: int, user_id: int | None) -> bool:
    """`visible_tokens` for one token of `workspace_id` whose user is `user_id` (None when
    that is not known: then owners only)."""
    if actor.can(workspace_id, Permission.ADMIN):
        return True
    mine = user_id is not None and actor.user is not None and actor.user.pk == user_id
    return mine and actor.can(workspace_id, Permission.READ)


def token_list_for(*, actor: Actor, workspace_id: int) -> QuerySet[ApiToken]:
    require_permission(actor=actor, workspace_id=workspace_id, needed=Permission.READ)
    return ApiToken.objects.filter(visible_tokens(actor), workspace_id=workspace_id).order_by(
        "-created_at", "-pk"
    )


def token_get_for(*, actor: Actor, token_id: int) -> ApiToken:
    token = ApiToken.objects.filter(visible_tokens(actor), pk=token_id).first()
    if token is None:
        raise NotFound("No such token.", path=["id"])
    return token


@transaction.atomic
def token_revoke(*, token: ApiToken, actor: Actor) -> ApiToken:
    _may_manage_tokens(actor, token.workspace_id)
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        raise InvalidState("The token is already revoked.")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    publish.credentials_changed_after_commit(token.user_id)
    events.record(token.workspace_id, "token.revoked", token_event_payload(token))
    return token


def tokens_revoke_for_member(*, workspace_id: int, user_id: int) -> list[ApiToken]:
    """Revoke a user's live tokens of one workspace, with a token.revoked event each, in the
    caller's transaction: the membership they acted through has ended (member_remove). A token
    is dead once its membership ends, so adding the user again later revives none of them.

    No permission check and no nudge of the user's sockets: the caller (the removal) makes
    both."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("tokens_revoke_for_member must run inside the removal's transaction")
    tokens = list(
        ApiToken.objects.select_for_update()
        .filter(workspace_id=workspace_id, user_id=user_id, revoked_at__isnull=True)
        .order_by("pk")
    )
    if not tokens:
        return []
    now = timezone.now()
    ApiToken.objects.filter(pk__in=[token.pk for token in tokens]).update(revoked_at=now)
    for token in tokens:
        token.revoked_at = now
    credentials_changed()  # a bulk update sends no signal
    events.record_many(workspace_id, "token.revoked", [token_event_payload(t) for t in tokens])
    return tokens
