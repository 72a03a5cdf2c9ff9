"""How long a job's run may take: its kind's time limit, or DEPOT_JOB_TIME_LIMIT_SECONDS.

Celery enforces it, in a prefork worker (the default pool; solo and threads pools, such as
embedded mode's worker, enforce none), from the limits each run_job message carries
(domain/jobs/dispatch.py):
- the soft limit: the child gets SoftTimeLimitExceeded (JobTimedOut) raised wherever its
  code is, most often in the handler, which may clean up and must let it through; the runner
  ends the job FAILED with JOB_TIMED_OUT, as any failure, wherever it landed
  (runner.execute);
- the hard limit, DEPOT_JOB_HARD_TIME_LIMIT_MARGIN_SECONDS later, for a handler that ignores
  the soft one (or is stuck where no Python code runs): the pool kills the child and starts
  another. The run's lease is no longer renewed; the runner recorded the run's hard deadline
  (`Job.deadline_at`) at the claim, and a job whose lease expired after that deadline is ended
  FAILED with JOB_TIMED_OUT by the sweeper (or by the claim of any message that reaches it
  first), never run again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import F, Q

from domain.jobs import redispatch, registry
from domain.jobs.models import JobState

JOB_TIMED_OUT = "JOB_TIMED_OUT"


@dataclass(frozen=True)
class TimeLimits:
    soft: float  # seconds: SoftTimeLimitExceeded in the handler
    hard: float  # seconds: the worker's child is killed


def of(kind: str) -> TimeLimits:
    try:
        soft = registry.get(kind).time_limit
    except KeyError:
        soft = None  # the runner fails an unknown kind at once
    if soft is None:
        soft = settings.DEPOT_JOB_TIME_LIMIT_SECONDS
    return TimeLimits(soft=soft, hard=soft + settings.DEPOT_JOB_HARD_TIME_LIMIT_MARGIN_SECONDS)


def soft_error(seconds: float) -> dict[str, str]:
    return {
        "code": JOB_TIMED_OUT,
        "message": f"The job ran longer than its time limit ({seconds:g} s) and was stopped.",
    }


def hard_error() -> dict[str, str]:
    return {
        "code": JOB_TIMED_OUT,
        "message": "The job ran past its time limit and its worker was stopped.",
    }


# The on_abandon hook's error for a killed run whose cancel was pending (the job ends
# CANCELLED, with no error of its own): what it gave up was cancelled.
JOB_CANCELLED = "JOB_CANCELLED"


def cancelled_error() -> dict[str, str]:
    return {"code": JOB_CANCELLED, "message": "The job was cancelled; its run was stopped."}


def outlived_its_run(now: datetime) -> Q:
    """RUNNING jobs whose worker was lost (the lease expired) after the run's hard deadline:
    killed by the hard limit (or lost within a lease of it), so running it again would most
    likely end the same way."""
    return Q(
        state=JobState.RUNNING,
        lease_expires_at__lt=now,
        deadline_at__isnull=False,
        deadline_at__lte=F("lease_expires_at"),
    )


def cleanup_due(now: datetime) -> Q:
    """Killed runs whose end may be tried now: never tried, or tried and failed (their kind's
    on_abandon hook raised) long enough ago (cleanup_retry_at)."""
    return Q(next_dispatch_at__lte=now) | Q(next_dispatch_at__isnull=True)


# How many times the end of a killed run is tried with its kind's on_abandon hook before the
# job is ended without it (JOB_CLEANUP_FAILED): with the default grace, over some 7.5 minutes,
# long enough for a store or a database that failed for a moment to come back.
CLEANUP_TRIES = 5
JOB_CLEANUP_FAILED = "JOB_CLEANUP_FAILED"


def cleanup_retry_at(now: datetime, failed: int) -> datetime:
    """When to try again the end of a killed run whose on_abandon hook has now failed `failed`
    times: the sweeper's own back-off (domain/jobs/redispatch.py), 30 s, then 1, 2, 4 min."""
    return now + redispatch.delay(failed - 1)


def cleanup_failed_error(failed: int) -> dict[str, str]:
    return {
        "code": JOB_CLEANUP_FAILED,
        "message": (
            f"The job's run was stopped and cleaning up after it failed {failed} times: what "
            "it was working on may be left half done (retry the job)."
        ),
    }


def within_its_run() -> Q:
    """The other RUNNING jobs: no deadline, or their lease expired before it."""
    return Q(deadline_at__isnull=True) | Q(deadline_at__gt=F("lease_expires_at"))
