from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction

from domain.accounts.errors import SlugTaken
from domain.accounts.models import ApiToken, Membership, Role, TokenScope, User, Workspace
from domain.accounts.tokens import hash_secret, new_secret
from domain.common.errors import DomainError
from domain.common.ids import global_id
from domain.common.text import column_limit, require_length
from domain.common.validation import validate_fields
from domain.jobs import events


@transaction.atomic
def workspace_create(*, name: str, slug: str, owner: User) -> Workspace:
    require_length(name, limit=column_limit(Workspace, "name"), path=["name"])
    require_length(slug, limit=column_limit(Workspace, "slug"), path=["slug"])
    workspace = Workspace(name=name, slug=slug)
    validate_fields(workspace)
    try:
        with transaction.atomic():
            workspace.save()
    except IntegrityError:
        raise SlugTaken("That slug is taken.", path=["slug"]) from None
    Membership.objects.create(user=owner, workspace=workspace, role=Role.OWNER)
    events.record(
        workspace.pk, "workspace.created", {"workspaceId": global_id("Workspace", workspace.pk)}
    )
    return workspace


@transaction.atomic
def membership_add(*, workspace: Workspace, user: User, role: Role) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        workspace=workspace, user=user, defaults={"role": role}
    )
    events.record(
        workspace.pk,
        "membership.changed",
        {"userId": global_id("User", user.pk), "role": str(role)},
    )
    return membership


@transaction.atomic
def api_token_create(
    *,
    workspace: Workspace,
    user: User,
    name: str,
    scopes: list[TokenScope],
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token, bound to the user's membership of the workspace (the row, so that a
    membership made again later does not revive it); returns it with its secret, which is
    never available again. A user who is no member gets a token that is refused."""
    if not scopes:
        raise DomainError(
            "A token needs at least one scope.", code="INVALID_INPUT", path=["scopes"]
        )
    secret = new_secret()
    membership = Membership.objects.filter(workspace=workspace, user=user).first()
    token = ApiToken.objects.create(
        workspace=workspace,
        user=user,
        membership=membership,
        name=name,
        prefix=secret[:12],
        secret_hash=hash_secret(secret),
        scopes=sorted({str(scope) for scope in scopes}),
        expires_at=expires_at,
    )
    events.record(workspace.pk, "token.created", {**token_event_payload(token), "name": name})
    return token, secret


def token_event_payload(token: ApiToken) -> dict[str, str]:
    """What every token event names: the token, and whose it is (the events stream shows a
    token's events only to those who may see the token: domain.jobs.visibility)."""
    return {
        "tokenId": global_id("ApiToken", token.pk),
        "userId": global_id("User", token.user_id),
    }
