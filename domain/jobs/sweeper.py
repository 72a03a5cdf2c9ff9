"""The sweeper (`depot.sweep_jobs`, every DEPOT_SWEEP_INTERVAL_SECONDS): the outbox's safety net.

It sends again a QUEUED job that no worker claimed in time (its dispatch was lost, or its broker
message was) and a RUNNING job whose lease expired (its worker died): run_job's claim takes such
a job over. A job still QUEUED after a send is most often waiting behind others in its lane,
its message in the queue: each send that finds it unclaimed doubles the wait before the next,
from DEPOT_DISPATCH_GRACE_SECONDS up to DEPOT_REDISPATCH_MAX_SECONDS (30 s, 1 min, 2, 4, 8,
then every 10 min by default). A message that was really lost is still sent again, later. A
claim starts the count again (transitions: the claim sets `next_dispatch_at` to its own time
and `redispatches` to 0), so a job whose worker dies is sent again at the first sweep after its
lease expired, however long it waited in the queue before. A RUNNING job whose worker was
lost after its run's hard time limit was killed by it: it ends FAILED with JOB_TIMED_OUT
instead (domain/jobs/time_limits.py). When its kind's on_abandon hook fails, the same two
columns schedule the next try of that end (runner.end_timed_out), a few times, after which
the job ends without the hook (JOB_CLEANUP_FAILED).

The job's `next_dispatch_at` is when it is due; the query reads a range of the index on
(state, next_dispatch_at) for QUEUED jobs and of (state, lease_expires_at) for RUNNING ones:
the jobs of a backlog that are not due are not read. A job without one is due: a release
before the schedule (still running during a rolling deploy) inserts and claims jobs without
it, and migration 0003 sets none on the jobs already there.

Each step of a sweep (ending the runs killed by their time limit, sending the due jobs,
pruning events, pruning idempotency keys) goes on when another fails, and one job that cannot
be ended is logged and skipped: an error, every sweep, in one of them must not stop the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from itertools import groupby
from operator import itemgetter

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from domain.jobs import dispatch, redispatch, runner, time_limits
from domain.jobs.idempotency import idempotency_keys_prune
from domain.jobs.models import Job, JobState
from domain.jobs.services import events_prune

logger = logging.getLogger(__name__)

# Jobs sent per sweep at most; the rest are due at the next sweep.
SWEEP_BATCH = 1000


def _due(now: datetime) -> Q:
    # Spelled out arm by arm (no OR inside an arm): each is one range of an index.
    queued = Q(state=JobState.QUEUED)
    lost = Q(state=JobState.RUNNING, lease_expires_at__lt=now) & time_limits.within_its_run()
    return (
        (queued & Q(next_dispatch_at__lte=now))
        | (queued & Q(next_dispatch_at__isnull=True))
        | (lost & Q(next_dispatch_at__lte=now))
        | (lost & Q(next_dispatch_at__isnull=True))
    )


def jobs_sweep() -> dict[str, int]:
    """End the runs their hard time limit killed, send due jobs again (as redeliveries, never
    held: domain/jobs/quick.py), then prune old events and idempotency keys. `errors`: how
    many jobs or steps failed (each logged with its traceback)."""
    now = timezone.now()
    counts = {"redispatched": 0, "timed_out": 0, "pruned": 0, "errors": 0}
    steps: list[tuple[str, str, Callable[[], int]]] = [
        (
            "timed_out",
            "ending runs killed by their time limit",
            lambda: _end_timed_out(now, counts),
        ),
        ("redispatched", "sending due jobs again", lambda: _redispatch(now)),
        ("pruned", "pruning events", lambda: events_prune(now=now)),
        ("", "pruning idempotency keys", idempotency_keys_prune),
    ]
    for name, what, step in steps:
        try:
            done = step()
        except Exception:
            logger.exception("sweeper: %s failed", what)
            counts["errors"] += 1
            continue
        if name:
            counts[name] = done
    if counts["redispatched"]:
        logger.info("sweeper re-dispatched %d job(s)", counts["redispatched"])
    return counts


def _end_timed_out(now: datetime, counts: dict[str, int]) -> int:
    """Runs killed by their hard time limit end JOB_TIMED_OUT (CANCELLED if a cancel was
    pending) rather than run again. One that fails (its kind's on_abandon hook raising, a
    deadlock) stays as it was, and its next try waits (runner.end_timed_out); the others are
    ended. Those waiting longest come first: one whose hook failed a moment ago goes after
    every run killed before, so failing hooks do not keep a batch's places from the others."""
    outlived = Job.objects.filter(
        time_limits.outlived_its_run(now), time_limits.cleanup_due(now)
    ).order_by(F("next_dispatch_at").asc(nulls_first=True))
    ended = 0
    for job_id in list(outlived.values_list("pk", flat=True)[:SWEEP_BATCH]):
        try:
            ended += runner.end_timed_out(job_id)
        except Exception:
            logger.exception("sweeper: ending job %s, killed by its time limit, failed", job_id)
            counts["errors"] += 1
    return ended


def _redispatch(now: datetime) -> int:
    with transaction.atomic():
        # Stamping the next send first keeps two sweepers, or two sweeps, from both sending the
        # same job (a duplicate send would still be harmless: the claim admits one runner).
        # SKIP LOCKED: a row another sweeper is stamping, or a job a worker holds for a quick
        # run, is not waited for. order_by(): no sort of the due rows by the model's ordering.
        due = list(
            Job.objects.filter(_due(now))
            .order_by()
            .select_for_update(skip_locked=True)
            .values_list("pk", "lane", "kind", "redispatches")[:SWEEP_BATCH]
        )
        by_count = groupby(sorted(due, key=itemgetter(3)), key=itemgetter(3))
        for count, jobs in by_count:  # a handful of distinct counts: one UPDATE each
            Job.objects.filter(pk__in=[job_id for job_id, *_ in jobs]).update(
                redispatches=count + 1,
                next_dispatch_at=now + redispatch.delay(count + 1),
                dispatched_at=now,
            )
    for job_id, lane, kind, _ in due:
        # send() logs and swallows a broker's refusal: the job is due again later.
        dispatch.send(job_id, lane, kind, redelivery=True)
    return len(due)
