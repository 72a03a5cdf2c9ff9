"""Celery entry points. They take ids and hand over to the domain at once."""

from __future__ import annotations

from celery import shared_task

from domain.jobs import runner
from domain.jobs.dispatch import RUN_JOB_TASK
from domain.jobs.services import jobs_sweep


@shared_task(name=RUN_JOB_TASK)
def run_job(job_id: int) -> None:
    runner.execute(job_id)


@shared_task(name="depot.sweep_jobs")
def sweep_jobs() -> dict[str, int]:
    return jobs_sweep()
