"""Running one job: claim it, keep its lease alive, call its handler, record how it ended.

Safe to call any number of times for the same job id (duplicate or redelivered broker messages,
the sweeper's re-dispatches): only one caller can hold the lease, and a finished job is skipped.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from domain.jobs import registry
from domain.jobs.context import JobContext
from domain.jobs.errors import JobCancelled, JobFailed, LeaseLost
from domain.jobs.models import Job, JobState
from domain.jobs.services import record_job_event

logger = logging.getLogger("depot.jobs")


def _lease() -> timedelta:
    return timedelta(seconds=settings.DEPOT_JOB_LEASE_SECONDS)


@transaction.atomic
def claim(job_id: int) -> tuple[Job, str] | None:
    """Take the job if it is queued, or running under a lease that expired. Else None."""
    now = timezone.now()
    token = uuid.uuid4().hex
    claimable = Q(state=JobState.QUEUED) | Q(state=JobState.RUNNING, lease_expires_at__lt=now)
    taken = Job.objects.filter(claimable, pk=job_id).update(
        state=JobState.RUNNING,
        lease_token=token,
        lease_expires_at=now + _lease(),
        attempts=F("attempts") + 1,
        started_at=now,
        updated_at=now,
    )
    if not taken:
        return None
    job = Job.objects.get(pk=job_id)
    if job.cancel_requested:
        _finish(job, token, JobState.CANCELLED)
        return None
    if job.attempts > job.max_attempts:
        error = {"code": "TOO_MANY_ATTEMPTS", "message": "The job's worker was lost too often."}
        _finish(job, token, JobState.FAILED, error=error)
        return None
    record_job_event(job, "job.started", attempt=job.attempts)
    return job, token


def _finish(
    job: Job,
    token: str,
    state: JobState,
    *,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> bool:
    """Record the end of our run, unless another worker took the job over meanwhile."""
    with transaction.atomic():
        now = timezone.now()
        changes: dict[str, Any] = {
            "state": state,
            "finished_at": now,
            "updated_at": now,
            "lease_token": "",
            "lease_expires_at": None,
            "result": result,
            "error": error,
        }
        if state == JobState.SUCCEEDED and job.progress_total is not None:
            changes["progress_done"] = job.progress_total
        ended = Job.objects.filter(pk=job.pk, state=JobState.RUNNING, lease_token=token).update(
            **changes
        )
        if not ended:
            return False
        job.refresh_from_db()
        record_job_event(job, f"job.{state.lower()}", **({"error": error} if error else {}))
        return True


class LeaseKeeper:
    """Renews the lease from a side thread while the handler works, however slow its steps."""

    def __init__(self, context: JobContext) -> None:
        self.context = context
        self.stopped = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"lease-{context.job.pk}", daemon=True
        )

    def __enter__(self) -> LeaseKeeper:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()

    def _run(self) -> None:
        interval = settings.DEPOT_JOB_LEASE_SECONDS / 3
        try:
            while not self.stopped.wait(interval):
                renewed = Job.objects.filter(
                    pk=self.context.job.pk,
                    state=JobState.RUNNING,
                    lease_token=self.context.lease_token,
                ).update(lease_expires_at=timezone.now() + _lease())
                if not renewed:
                    self.context.lease_lost = True
                    return
        except Exception:
            logger.exception("renewing the lease of job %s failed", self.context.job.pk)
        finally:
            connection.close()


def execute(job_id: int) -> None:
    # Connection hygiene around tasks is Celery's Django fix-up's job, not ours.
    claimed = claim(job_id)
    if claimed is None:
        logger.info("job %s: nothing to do (finished, running elsewhere, or missing)", job_id)
        return
    job, token = claimed
    try:
        kind = registry.get(job.kind)
    except KeyError:
        _finish(job, token, JobState.FAILED, error={"code": "UNKNOWN_KIND", "message": job.kind})
        return
    context = JobContext(job=job, lease_token=token)
    with LeaseKeeper(context):
        try:
            result = kind.handler(context)
        except LeaseLost:
            logger.warning("job %s was taken over by another worker; stopping", job_id)
            return
        except JobCancelled:
            _finish(job, token, JobState.CANCELLED)
            return
        except JobFailed as failure:
            error = {"code": failure.code, "message": failure.message}
            _finish(job, token, JobState.FAILED, error=error)
            return
        except Exception:
            reference = uuid.uuid4().hex[:12]
            logger.exception("job %s (%s) crashed [ref %s]", job_id, job.kind, reference)
            error = {"code": "INTERNAL_ERROR", "message": f"Unexpected error (ref {reference})."}
            _finish(job, token, JobState.FAILED, error=error)
            return
    _finish(job, token, JobState.SUCCEEDED, result=result or {})
