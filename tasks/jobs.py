"""Celery entry points. They take ids and hand over to the domain at once."""

from __future__ import annotations

from celery import shared_task

from domain.assets.multipart import multipart_uploads_expire
from domain.jobs import runner
from domain.jobs.dispatch import RUN_JOB_TASK
from domain.jobs.services import jobs_sweep


@shared_task(name=RUN_JOB_TASK)
def run_job(job_id: int) -> None:
    runner.execute(job_id)


@shared_task(name="depot.sweep_jobs")
def sweep_jobs() -> dict[str, int]:
    return jobs_sweep()


@shared_task(name="depot.expire_multipart_uploads")
def expire_multipart_uploads() -> dict[str, int]:
    return multipart_uploads_expire()
