"""Mutations: decode input, call one service, return the payload or typed errors."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from asgiref.sync import sync_to_async

from domain.accounts import credentials
from domain.accounts.models import Permission
from domain.accounts.selectors import require_permission
from domain.common.errors import DomainError, Forbidden
from domain.jobs import idempotency
from schema.context import Info, actor_of
from schema.errors import UserError, require_authenticated

T = TypeVar("T")
R = TypeVar("R", bound=Callable[..., Any])


def either_mode(resolver: R) -> R:
    """A mutation's resolver is a plain function, run in Django's sync world in either execution
    mode: inline under `execute_sync` (a POSTed mutation runs on the sync lane, in the thread
    hop that admitted it: schema/sync_lane.py), and in one thread hop under async execution (a
    batch, a websocket operation, a persisted query sent by its hash alone), where it returns
    the awaitable that graphql-core awaits."""

    @functools.wraps(resolver)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return resolver(*args, **kwargs)
        return sync_to_async(resolver)(*args, **kwargs)

    return cast("R", run)


def attempt(info: Info, call: Callable[[], T]) -> tuple[T | None, list[UserError]]:
    """Run a service call; an expected failure becomes a UserError."""
    actor = actor_of(info)
    try:
        require_authenticated(actor)
        if actor.token is not None and actor.token.permission < Permission.WRITE:
            # Checked here once for every mutation, so no service can forget it.
            raise Forbidden("This token is read-only.")
        changes_before = credentials.changes_seen()
        result = call()
    except DomainError as error:
        return None, [UserError.from_domain(error)]
    if credentials.changes_seen() != changes_before:
        # The mutation may have changed the caller's own memberships (a new workspace,
        # leaving one): the payload is resolved with fresh permissions. Most mutations change
        # no credentials and skip this read.
        actor.reload()
    return result, []


@dataclasses.dataclass(frozen=True)
class Once:
    """How a mutation that starts work honours an idempotency key."""

    key: str | None
    operation: str
    request: Any
    workspace_of: Callable[[], int]
    remember: Callable[[Any], dict[str, Any]]
    recall: Callable[[dict[str, Any]], Any]


def request_of(input: Any) -> dict[str, Any]:
    """The input as the fingerprint sees it: every field but the key itself."""
    fields = (
        dataclasses.asdict(input)
        if dataclasses.is_dataclass(input) and not isinstance(input, type)
        else dict(vars(input))
    )
    fields.pop("idempotency_key", None)
    return fields


def attempt_once(info: Info, once: Once, call: Callable[[], T]) -> tuple[T | None, list[UserError]]:
    """attempt(), but a repeated idempotency key returns the first result and runs nothing."""
    if once.key is None:
        return attempt(info, call)

    def keyed() -> T:
        workspace_id = once.workspace_of()
        # A repeat hands back what the first request did, before the service (and its own
        # permission check) would run: only to a caller who may start that work now. Every
        # keyed mutation starts work, which takes write permission.
        require_permission(actor=actor_of(info), workspace_id=workspace_id, needed=Permission.WRITE)
        result: T = idempotency.once(
            workspace_id=workspace_id,
            key=once.key or "",
            operation=once.operation,
            payload=once.request,
            run=call,
            remember=once.remember,
            recall=once.recall,
        )
        return result

    return attempt(info, keyed)
