"""Writes to the job ledger. Every state change records its event in the same transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from domain.accounts.actor import Actor
from domain.accounts.models import Permission
from domain.accounts.selectors import require_permission
from domain.common.errors import InvalidState
from domain.jobs import dispatch, events, redispatch, registry, selectors, transitions
from domain.jobs.errors import IdempotencyConflict
from domain.jobs.models import Event, EventCounter, Job, JobState
from domain.jobs.payloads import job_event_payload

logger = logging.getLogger(__name__)


def record_job_event(job: Job, type: str, **extra: Any) -> None:
    events.record(job.workspace_id, type, job_event_payload(job, **extra), job_id=job.pk)


def job_create(
    *,
    workspace_id: int,
    kind: str,
    parameters: dict[str, Any],
    created_by_id: int | None,
    idempotency_key: str | None = None,
    parent: Job | None = None,
    if_new: Callable[[Job], None] | None = None,
) -> Job:
    """Queue a job; it is handed to the broker once the caller's transaction commits.

    With an idempotency key, a repeat with the same parameters returns the first job and starts
    nothing; the same key with other parameters is an error. The unique constraint settles
    concurrent repeats. `if_new` is called with the job only if it was created now (for a
    caller's own event, which a repeat must not record again).
    """
    now = timezone.now()
    job = Job(
        workspace_id=workspace_id,
        kind=kind,
        lane=registry.get(kind).lane,
        parameters=parameters,
        idempotency_key=idempotency_key,
        created_by_id=created_by_id,
        parent=parent,
        dispatched_at=now,
        next_dispatch_at=redispatch.first_due(now),
    )
    if transitions.one_statement_in_any_transaction_possible():
        # The row and job.queued in one statement: with no transaction around us, one round
        # trip that commits instead of BEGIN, INSERT, event, COMMIT (bench/realtime README).
        created = transitions.create_with_queued_event(job)
        if created is None:  # a repeat: the workspace has this idempotency key already
            return _repeat_of(job)
        _dispatch_and_announce(job, *created)
    else:
        found = _job_create_generally(job)
        if found is not job:
            return found
    if if_new is not None:
        if_new(job)
    return job


def _dispatch_and_announce(job: Job, event_id: int, sequence: int) -> None:
    """After the statement that wrote the job and its job.queued: both wait for the caller's
    commit, if it has a transaction (else the statement committed and they run now)."""
    # Dispatch is registered before the event, so after commit the job reaches the broker before
    # job.queued is handed to the publisher thread: the broker send is on the job's critical
    # path, the queued event is not (bench/realtime: the send took 2.5-4.4 ms instead of 0.35
    # when the publisher thread ran beside it).
    dispatch.dispatch_after_commit(job)
    transitions.record_job_event_committed(
        job, "job.queued", event_id=event_id, sequence=sequence, created_at=job.created_at
    )


@transaction.atomic
def _job_create_generally(job: Job) -> Job:
    """Databases other than Postgres (with a key, a savepoint settles a concurrent repeat).
    Returns `job` if it was created, else the earlier job of its key."""
    if job.idempotency_key is not None:
        existing = Job.objects.filter(
            workspace_id=job.workspace_id, idempotency_key=job.idempotency_key
        )
        found = existing.first()
        if found is not None:
            return _same_request(found, job.kind, job.parameters)
        try:
            with transaction.atomic():
                job.save()
        except IntegrityError:
            return _repeat_of(job)
    else:
        # Nothing unique to collide with: no savepoint (two round trips on every job's path).
        job.save()
    dispatch.dispatch_after_commit(job)  # before the event: see above
    record_job_event(job, "job.queued")
    return job


def _repeat_of(job: Job) -> Job:
    """The job that already holds `job`'s idempotency key, if `job` asks for the same work."""
    found = Job.objects.get(workspace_id=job.workspace_id, idempotency_key=job.idempotency_key)
    return _same_request(found, job.kind, job.parameters)


def _same_request(job: Job, kind: str, parameters: dict[str, Any]) -> Job:
    if job.kind != kind or job.parameters != parameters:
        raise IdempotencyConflict(
            "This idempotency key was used with different input.", path=["idempotencyKey"]
        )
    return job


def job_cancel(*, job_id: int, actor: Actor) -> Job:
    """Cancel at once if queued; ask the handler to stop if running."""
    if transitions.one_statement_in_any_transaction_possible():
        # One statement, as for a retry. A job the caller may not change, a finished one, or
        # one with a cancel already pending falls through to the way below, which says why.
        cancelled = transitions.cancel_in_one_statement(
            job_id, workspace_ids=actor.workspace_ids(Permission.WRITE)
        )
        if cancelled is not None:
            job, type, event_id, sequence = cancelled
            transitions.record_job_event_committed(
                job, type, event_id=event_id, sequence=sequence, created_at=job.updated_at
            )
            return job
    job = selectors.job_get_for(actor=actor, job_id=job_id)
    require_permission(actor=actor, workspace_id=job.workspace_id, needed=Permission.WRITE)
    return _job_cancel_generally(job)


@transaction.atomic
def _job_cancel_generally(job: Job) -> Job:
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.is_final:
        raise InvalidState(f"The job is already {job.state.lower()}.")
    if job.state == JobState.QUEUED:
        job.state = JobState.CANCELLED
        job.finished_at = timezone.now()
        job.save(update_fields=["state", "finished_at", "updated_at"])
        record_job_event(job, "job.cancelled")
    elif not job.cancel_requested:
        job.cancel_requested = True
        job.save(update_fields=["cancel_requested", "updated_at"])
        record_job_event(job, "job.cancel_requested")
    return job


def job_retry(*, job_id: int, actor: Actor) -> Job:
    """Run a failed or cancelled job again, as the same job, from the start."""
    if transitions.one_statement_in_any_transaction_possible():
        # One statement (the row's reset and job.retried, for a job in a workspace the caller
        # may change) instead of the job's lookup, BEGIN, a locking read, the UPDATE, the event
        # and COMMIT. Anything else falls through to the way below, which says why not.
        retried = transitions.retry_in_one_statement(
            job_id, workspace_ids=actor.workspace_ids(Permission.WRITE)
        )
        if retried is not None:
            job, event_id, sequence = retried
            dispatch.dispatch_after_commit(job)  # before the event: see job_create
            transitions.record_job_event_committed(
                job, "job.retried", event_id=event_id, sequence=sequence, created_at=job.updated_at
            )
            return job
    job = selectors.job_get_for(actor=actor, job_id=job_id)
    require_permission(actor=actor, workspace_id=job.workspace_id, needed=Permission.WRITE)
    return _job_retry_generally(job)


@transaction.atomic
def _job_retry_generally(job: Job) -> Job:
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.state not in (JobState.FAILED, JobState.CANCELLED):
        raise InvalidState("Only a failed or cancelled job can be retried.")
    job.state = JobState.QUEUED
    job.error = None
    job.result = None
    job.cancel_requested = False
    job.attempts = 0
    job.progress_done = 0
    job.progress_total = None
    job.progress_stage = ""
    job.finished_at = None
    job.dispatched_at = timezone.now()
    job.next_dispatch_at = redispatch.first_due(job.dispatched_at)
    job.redispatches = 0
    job.save()
    dispatch.dispatch_after_commit(job)  # before the event: see job_create
    record_job_event(job, "job.retried")
    return job


def events_prune(*, now: Any) -> int:
    """Delete events older than the retention window, remembering how far each workspace went."""
    cutoff = now - timedelta(days=settings.DEPOT_EVENT_RETENTION_DAYS)
    pruned = 0
    for workspace_id in (
        Event.objects.filter(created_at__lt=cutoff)
        .values_list("workspace_id", flat=True)
        .distinct()
    ):
        with transaction.atomic():
            old = Event.objects.filter(workspace_id=workspace_id, created_at__lt=cutoff)
            last = old.order_by("-sequence").values_list("sequence", flat=True).first()
            if last is None:
                continue
            pruned += Event.objects.filter(workspace_id=workspace_id, sequence__lte=last).delete()[
                0
            ]
            EventCounter.objects.filter(workspace_id=workspace_id, pruned_through__lt=last).update(
                pruned_through=last
            )
    return pruned
