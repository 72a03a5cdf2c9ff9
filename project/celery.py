"""The Celery app: `celery -A project worker` runs jobs, `celery -A project beat` the sweeper."""

from __future__ import annotations

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("depot", include=["tasks.jobs"])
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.on_after_configure.connect
def _wire(sender: Celery, **kwargs: object) -> None:
    from tasks.lanes import QUEUES
    from tasks.schedule import beat_schedule

    sender.conf.task_queues = QUEUES
    sender.conf.beat_schedule = beat_schedule()


@signals.user_preload_options.connect
def _check_settings(**kwargs: object) -> None:
    """Fail at start with the variable's name, not with a stack trace in the first task."""
    from project.boot import setup_django_or_exit

    setup_django_or_exit("celery")
