"""Mutations: decode input, call one service, return the payload or typed errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from asgiref.sync import sync_to_async

from domain.common.errors import DomainError
from schema.context import Info, actor_of
from schema.errors import UserError, require_authenticated

T = TypeVar("T")


async def attempt(info: Info, call: Callable[[], T]) -> tuple[T | None, list[UserError]]:
    """Run a service call in Django's sync world; an expected failure becomes a UserError."""

    def guarded() -> T:
        require_authenticated(actor_of(info))
        return call()

    try:
        return await sync_to_async(guarded)(), []
    except DomainError as error:
        return None, [UserError.from_domain(error)]
