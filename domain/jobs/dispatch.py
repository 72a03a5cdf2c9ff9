"""Handing jobs to the broker after commit: a leaf module, it knows the task only by name."""

from __future__ import annotations

import logging

from celery import current_app
from django.db import transaction

from domain.jobs.models import Lane

logger = logging.getLogger(__name__)

RUN_JOB_TASK = "depot.run_job"


def send(job_id: int, lane: str, *, redelivery: bool = False) -> None:
    """`redelivery`: the job was dispatched before (the sweeper): its run is never a held one
    (domain/jobs/quick.py), so a job that killed its worker counts its attempts."""
    kwargs = {"redelivery": True} if redelivery else {}
    try:
        current_app.send_task(RUN_JOB_TASK, args=[job_id], kwargs=kwargs, queue=Lane(lane).queue)
    except Exception:
        # The job row is committed as QUEUED; the sweeper dispatches it again later.
        logger.warning("dispatch of job %s failed; the sweeper will retry", job_id, exc_info=True)


def dispatch_after_commit(job_id: int, lane: str) -> None:
    transaction.on_commit(lambda: send(job_id, lane))
