"""Handing jobs to the broker after commit: a leaf module, it knows the task only by name."""

from __future__ import annotations

import logging

from celery import current_app
from django.conf import settings
from django.db import transaction

from domain.jobs import time_limits
from domain.jobs.models import Job, Lane

logger = logging.getLogger(__name__)

RUN_JOB_TASK = "depot.run_job"


def send(job_id: int, lane: str, kind: str, *, redelivery: bool = False) -> None:
    """`redelivery`: the job was dispatched before (the sweeper): its run is never a held one
    (domain/jobs/quick.py), so a job that killed its worker counts its attempts. The message
    carries the kind's time limits (domain/jobs/time_limits.py), which a prefork worker
    enforces; the embedded worker (threads) cannot, so it gets none."""
    kwargs = {"redelivery": True} if redelivery else {}
    options: dict[str, float] = {}
    if not settings.DEPOT_EMBEDDED_WORKER:
        limits = time_limits.of(kind)
        options = {"soft_time_limit": limits.soft, "time_limit": limits.hard}
    try:
        current_app.send_task(
            RUN_JOB_TASK, args=[job_id], kwargs=kwargs, queue=Lane(lane).queue, **options
        )
    except Exception:
        # The job row is committed as QUEUED; the sweeper dispatches it again later.
        logger.warning("dispatch of job %s failed; the sweeper will retry", job_id, exc_info=True)


def dispatch_after_commit(job: Job) -> None:
    job_id, lane, kind = job.pk, job.lane, job.kind
    transaction.on_commit(lambda: send(job_id, lane, kind))
