"""Job kinds and their handlers. Each domain registers its own in its AppConfig.ready()."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from domain.jobs.models import Lane

if TYPE_CHECKING:
    from domain.jobs.context import JobContext

Handler = Callable[["JobContext"], dict[str, Any] | None]


@dataclass(frozen=True)
class JobKind:
    name: str
    lane: Lane
    handler: Handler


_kinds: dict[str, JobKind] = {}


def register(name: str, *, lane: Lane) -> Callable[[Handler], Handler]:
    def decorator(handler: Handler) -> Handler:
        _kinds[name] = JobKind(name=name, lane=lane, handler=handler)
        return handler

    return decorator


def get(name: str) -> JobKind:
    return _kinds[name]


def known() -> list[str]:
    return sorted(_kinds)
