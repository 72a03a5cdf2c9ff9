"""The Celery app: `celery -A project worker` runs jobs, `celery -A project beat` the sweeper."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("depot", include=["tasks.jobs"])
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.on_after_configure.connect
def _wire(sender: Celery, **kwargs: object) -> None:
    # Celery logs and swallows exceptions in signal handlers: these imports must not need
    # Django's app registry (they run while the configuration loads).
    from tasks.lanes import queues
    from tasks.schedule import beat_schedule

    sender.conf.task_queues = queues()
    sender.conf.beat_schedule = beat_schedule()


if Path(sys.argv[0]).name == "celery":
    # The celery program reads its configuration while parsing options: load it first, so a
    # wrong setting ends the program with the variable's name rather than a stack trace.
    from project.boot import load_settings_or_exit

    load_settings_or_exit("celery")
