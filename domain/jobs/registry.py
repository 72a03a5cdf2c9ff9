"""Job kinds and their handlers. Each domain registers its own in its AppConfig.ready()."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from domain.jobs.models import Lane

if TYPE_CHECKING:
    from domain.jobs.context import JobContext
    from domain.jobs.models import Job

Handler = Callable[["JobContext"], dict[str, Any] | None]
# Called, in the transaction that ends it, for a job the runner gives up without its handler
# (its workers were lost too often, or its run reached its time limit: killed, or interrupted
# anywhere): the handler cannot clean up (or may not have cleaned up) what its runs left.
Abandoned = Callable[["Job", dict[str, Any]], None]


@dataclass(frozen=True)
class JobKind:
    name: str
    lane: Lane
    handler: Handler
    # Seconds a run may take before SoftTimeLimitExceeded (domain/jobs/time_limits.py); None:
    # DEPOT_JOB_TIME_LIMIT_SECONDS.
    time_limit: float | None = None


_kinds: dict[str, JobKind] = {}
_abandoned: dict[str, Abandoned] = {}


def register(
    name: str, *, lane: Lane, time_limit: float | None = None
) -> Callable[[Handler], Handler]:
    def decorator(handler: Handler) -> Handler:
        _kinds[name] = JobKind(name=name, lane=lane, handler=handler, time_limit=time_limit)
        return handler

    return decorator


def on_abandon(name: str, callback: Abandoned) -> None:
    _abandoned[name] = callback


def abandoned(job: Job, error: dict[str, Any]) -> None:
    callback = _abandoned.get(job.kind)
    if callback is not None:
        callback(job, error)


def get(name: str) -> JobKind:
    return _kinds[name]


def known() -> list[str]:
    return sorted(_kinds)
