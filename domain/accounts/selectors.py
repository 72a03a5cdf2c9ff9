from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user
from django.db import DEFAULT_DB_ALIAS, connections
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


def actor_still_valid(
    *, actor: Actor, secret: str | None, session_key: str | None = None
) -> Actor | None:
    """A fresh actor for an open connection, or None if its credentials were withdrawn: a
    token revoked or expired or its membership ended, a user deactivated, or, for a
    connection authenticated by its session, that session ended (a logout) or no longer valid
    (the password changed).

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
        if session_key is not None and _session_user_id(session_key) != user.pk:
            return None
        fresh = Actor(user=user)
    fresh.permissions  # noqa: B018 (loads them now)
    return fresh


def _session_user_id(session_key: str) -> int | None:
    """Whose the session is, as Django's authentication decides it (the session exists, and
    its password hash is the user's current one); None if nobody's."""
    engine = import_module(settings.SESSION_ENGINE)
    user = get_user(SimpleNamespace(session=engine.SessionStore(session_key)))  # type: ignore[arg-type]
    return user.pk if user.is_authenticated else None


# Every authenticated API request runs this, so it is one hand-written statement, run on a bare
# cursor (no RawQuerySet, no column descriptions): the token, its user, the role of the
# membership it acts through, and its workspace's event sequence (the read cache keys on it, so
# a cached read needs no second statement). Built with the ORM, compiling the query cost more
# than running it (bench/http/PROFILE.md).
#
# The membership is the token's own row (ApiToken.membership), not any membership of its user
# in its workspace: one deleted and made again is another row, so the tokens of a member
# removed outside the services stay dead when they are added back. A token without the link
# (issued by the previous release during a deploy) acts through its user's membership there
# that is older than itself, which a membership made again is not. Actor._load_permissions
# reads the same row.
_TOKEN_ATTNAMES = [f.attname for f in ApiToken._meta.concrete_fields if f.attname != "secret_hash"]
_USER_ATTNAMES = [f.attname for f in User._meta.concrete_fields]
_Converters = list[tuple[Any, list[Any]]]  # per column: (expression, converters)


@lru_cache(maxsize=4)
def _bearer_statement(vendor: str) -> tuple[str, int, int, _Converters]:
    from domain.jobs.models import EventCounter

    db = connections[DEFAULT_DB_ALIAS]
    quote = db.ops.quote_name
    token_fields = [f for f in ApiToken._meta.concrete_fields if f.attname != "secret_hash"]
    user_fields = list(User._meta.concrete_fields)
    token_table, user_table = quote(ApiToken._meta.db_table), quote(User._meta.db_table)
    membership, counter = quote(Membership._meta.db_table), quote(EventCounter._meta.db_table)
    columns = [f"t.{quote(str(f.column))}" for f in token_fields]
    columns += [f"u.{quote(str(f.column))}" for f in user_fields]
    sql = (
        f"SELECT {', '.join(columns)}, "  # noqa: S608 (only names from the models)
        f"(SELECT m.role FROM {membership} m"
        " WHERE m.user_id = t.user_id AND m.workspace_id = t.workspace_id"
        " AND (m.id = t.membership_id"
        " OR (t.membership_id IS NULL AND m.created_at <= t.created_at))), "
        f"(SELECT c.last_sequence FROM {counter} c WHERE c.workspace_id = t.workspace_id) "
        f"FROM {token_table} t JOIN {user_table} u ON u.id = t.user_id "
        "WHERE t.secret_hash = %s AND t.revoked_at IS NULL"
    )
    # The converters the ORM would apply (JSON, and SQLite's dates and booleans), found once.
    converters: _Converters = []
    for model, fields in ((ApiToken, token_fields), (User, user_fields)):
        for field in fields:
            col = field.get_col(model._meta.db_table)
            converters.append((col, db.ops.get_db_converters(col) + col.get_db_converters(db)))
    return sql, len(token_fields), len(user_fields), converters


@dataclass(frozen=True)
class Bearer:
    """The caller behind an API token, and the event sequence of the token's workspace as of
    the same statement."""

    actor: Actor
    event_sequence: int


@dataclass(frozen=True)
class BearerRecord:
    """What the bearer statement read for one secret, before any check: immutable, so a
    process may keep it (domain.accounts.credentials) and build a fresh Actor from it."""

    token_values: tuple[Any, ...]
    user_values: tuple[Any, ...]
    member_role: str | None
    event_sequence: int

    def used_at(self, when: datetime) -> BearerRecord:
        values = list(self.token_values)
        values[_LAST_USED_INDEX] = when
        return replace(self, token_values=tuple(values))


_LAST_USED_INDEX = _TOKEN_ATTNAMES.index("last_used_at")


def bearer_record(*, secret: str) -> BearerRecord:
    """The token, user and role behind a secret as the database has them now, or
    InvalidToken if no unrevoked token has that secret. One statement."""
    if not secret.startswith(TOKEN_PREFIX):
        raise InvalidToken("The API token is not valid.")
    db = connections[DEFAULT_DB_ALIAS]
    sql, n_token, n_user, converters = _bearer_statement(db.vendor)
    with db.cursor() as cursor:
        cursor.execute(sql, [hash_secret(secret)])
        row = cursor.fetchone()
    if row is None:
        raise InvalidToken("The API token is not valid.")
    values = list(row)
    for index, (col, functions) in enumerate(converters):
        for convert in functions:
            if values[index] is not None:
                values[index] = convert(values[index], col, db)
    return BearerRecord(
        token_values=tuple(values[:n_token]),
        user_values=tuple(values[n_token : n_token + n_user]),
        member_role=row[-2],
        event_sequence=int(row[-1] or 0),
    )


def bearer_admit(record: BearerRecord) -> tuple[Bearer, BearerRecord]:
    """The actor for a record, or InvalidToken if the token expired, its user was
    deactivated or is no longer a member of its workspace. Marks the token as used
    (coarsely); returns the record as it is after that."""
    token = ApiToken.from_db(DEFAULT_DB_ALIAS, _TOKEN_ATTNAMES, list(record.token_values))
    user = User.from_db(DEFAULT_DB_ALIAS, _USER_ATTNAMES, list(record.user_values))
    now = timezone.now()
    if token.expires_at is not None and token.expires_at <= now:
        raise InvalidToken("The API token is not valid.")
    if not user.is_active:
        raise InvalidToken("The API token is not valid.")
    member_role = record.member_role
    if member_role is None:
        # The token acts through a membership; once that row is gone, whatever deleted it,
        # the token is as dead as a revoked one. A token that answered 200 with no access
        # looked valid to its integrator.
        raise InvalidToken("The API token is not valid.")
    token.user = user
    # Coarse on purpose: one write a minute per token, not one per request.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
        record = record.used_at(now)
    role = Role(member_role)
    permissions = {token.workspace_id: min(ROLE_PERMISSION[role], token.permission)}
    actor = Actor(user=user, token=token, _permissions=permissions)
    return Bearer(actor=actor, event_sequence=record.event_sequence), record


def bearer_lookup(*, secret: str) -> Bearer:
    """The actor for an API token secret (with the event sequence of its workspace), or
    InvalidToken. Marks the token as used. One statement; always read from the database, so a
    revoked or expired token, or a changed role, takes effect on the next request."""
    bearer, _ = bearer_admit(bearer_record(secret=secret))
    return bearer


def actor_from_bearer(*, secret: str) -> Actor:
    """The actor for an API token secret, or InvalidToken. Marks the token as used."""
    return bearer_lookup(secret=secret).actor
