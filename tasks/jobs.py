"""Celery entry points. They take ids and hand over to the domain at once."""

from __future__ import annotations

from celery import Task, shared_task
from django.db import close_old_connections

from domain.assets.multipart import multipart_uploads_expire
from domain.assets.object_removals import object_removals_sweep
from domain.jobs import runner
from domain.jobs.dispatch import RUN_JOB_TASK
from domain.jobs.sweeper import jobs_sweep


@shared_task(name=RUN_JOB_TASK, bind=True)
def run_job(self: Task, job_id: int, redelivery: bool = False) -> None:
    # As Django does around a request: a connection that broke goes back before and after, so
    # one job's connection trouble never reaches the next. With the pool any connection goes
    # back, except a prefork child's main thread's, kept from job to job
    # (project.celery.keep_on_the_main_thread). Celery's own fix-up would close the whole pool
    # per task (CELERY_DB_REUSE_MAX).
    close_old_connections()
    try:
        # The broker's own redelivery (RabbitMQ, after a worker died holding the message)
        # counts as one, as the sweeper's does.
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        # (hard, soft) seconds, from the message (domain/jobs/dispatch.py): the runner records
        # when the hard limit will stop this run, for the sweeper to tell a killed run from a
        # lost one. None from the embedded worker, which enforces no limit.
        hard, _soft = self.request.timelimit or (None, None)
        runner.execute(job_id, redelivery=redelivery or redelivered, time_limit=hard)
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


@shared_task(name="depot.remove_objects")
def remove_objects() -> dict[str, int]:
    close_old_connections()
    try:
        return object_removals_sweep()
    finally:
        close_old_connections()
