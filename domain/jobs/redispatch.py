"""When the sweeper (domain/jobs/sweeper.py) may send a job again that no worker has claimed."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings


def first_due(now: datetime) -> datetime:
    """For a job handed to the broker at `now` (queued, or retried): a grace period later."""
    return now + timedelta(seconds=settings.DEPOT_DISPATCH_GRACE_SECONDS)


def delay(redispatches: int) -> timedelta:
    """The wait after the sweeper's `redispatches`-th send of a job before its next one: twice
    the last, from the grace period up to DEPOT_REDISPATCH_MAX_SECONDS."""
    grace = settings.DEPOT_DISPATCH_GRACE_SECONDS
    doublings = min(redispatches, 32)  # past the cap long before; keeps 2**n small
    return timedelta(seconds=min(grace * 2**doublings, settings.DEPOT_REDISPATCH_MAX_SECONDS))
