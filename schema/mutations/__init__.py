"""Mutations: decode input, call one service, return the payload or typed errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async

from domain.accounts import credentials
from domain.accounts.models import Permission
from domain.common.errors import DomainError, Forbidden
from domain.jobs import idempotency
from schema.context import Info, actor_of
from schema.errors import UserError, require_authenticated

T = TypeVar("T")


async def attempt(info: Info, call: Callable[[], T]) -> tuple[T | None, list[UserError]]:
    """Run a service call in Django's sync world; an expected failure becomes a UserError."""

    def guarded() -> T:
        actor = actor_of(info)
        require_authenticated(actor)
        if actor.token is not None and actor.token.permission < Permission.WRITE:
            # Checked here once for every mutation, so no service can forget it.
            raise Forbidden("This token is read-only.")
        changes_before = credentials.changes_seen()
        result = call()
        if credentials.changes_seen() != changes_before:
            # The mutation may have changed the caller's own memberships (a new workspace,
            # leaving one): the payload is resolved with fresh permissions, loaded here in
            # Django's sync world. Most mutations change no credentials and skip this read.
            actor.reload()
        return result

    try:
        return await sync_to_async(guarded)(), []
    except DomainError as error:
        return None, [UserError.from_domain(error)]


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


async def attempt_once(
    info: Info, once: Once, call: Callable[[], T]
) -> tuple[T | None, list[UserError]]:
    """attempt(), but a repeated idempotency key returns the first result and runs nothing."""
    if once.key is None:
        return await attempt(info, call)

    def keyed() -> T:
        result: T = idempotency.once(
            workspace_id=once.workspace_of(),
            key=once.key or "",
            operation=once.operation,
            payload=once.request,
            run=call,
            remember=once.remember,
            recall=once.recall,
        )
        return result

    return await attempt(info, keyed)
