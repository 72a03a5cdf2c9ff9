"""Celery entry points. They take ids and hand over to the domain at once."""

from __future__ import annotations

from celery import shared_task
from django.db import close_old_connections

from domain.assets.multipart import multipart_uploads_expire
from domain.jobs import runner
from domain.jobs.dispatch import RUN_JOB_TASK
from domain.jobs.services import jobs_sweep


@shared_task(name=RUN_JOB_TASK)
def run_job(job_id: int) -> None:
    # As Django does around a request: a connection that broke goes back before and after, so
    # one job's connection trouble never reaches the next. With the pool any connection goes
    # back, except a prefork child's main thread's, kept from job to job
    # (project.celery.keep_on_the_main_thread). Celery's own fix-up would close the whole pool
    # per task (CELERY_DB_REUSE_MAX).
    close_old_connections()
    try:
        runner.execute(job_id)
    finally:
        close_old_connections()


@shared_task(name="depot.sweep_jobs")
def sweep_jobs() -> dict[str, int]:
    close_old_connections()
    try:
        return jobs_sweep()
    finally:
        close_old_connections()


@shared_task(name="depot.expire_multipart_uploads")
def expire_multipart_uploads() -> dict[str, int]:
    return multipart_uploads_expire()
