"""The Celery app: `celery -A project worker` runs jobs, `celery -A project beat` the sweeper."""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import celeryd_after_setup, worker_process_init
from django.db.backends.signals import connection_created

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")


class DjangoCelerySettings(Mapping[str, Any]):
    """Django's CELERY_* settings as a plain mapping, read once when Celery first configures.

    Celery reads its configuration on every send and task (five lookups per `send_task`). Over
    `django.conf:settings` each lookup that Django does not set (most: they are Celery's
    defaults) goes through LazySettings' attribute errors for the prefixed and the plain name:
    30-80 µs a lookup on the loaded bench box, against 15-19 µs over a dict (bench/realtime
    README, "third pass").
    Django's settings do not change in a running process, so the values are the same.
    """

    def __init__(self) -> None:
        self._values: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._values is None:
            from django.conf import settings

            self._values = {
                name: getattr(settings, name)
                for name in dir(settings)
                if name.startswith("CELERY_")
            }
        return self._values

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


app = Celery("depot", include=["tasks.jobs"])
app.config_from_object(DjangoCelerySettings(), namespace="CELERY")


@celeryd_after_setup.connect
def _freeze_the_startup_heap(**kwargs: object) -> None:
    """Everything alive once the worker is set up (Celery, Django, Depot's modules, the task
    registry: ~134,000 objects) is moved out of the cycle collector's reach, in the worker's
    main process just before its pool forks the children, which inherit it (gc.freeze's
    documented use).

    A full collection walks every tracked object: ~90 ms on the bench box, in the main process
    (which takes every task from the broker, so every job waits behind it) or in a child, and
    CPython makes one whenever the long-lived heap has grown by a quarter (bench/realtime's
    trace caught two of ~100 ms in the main process: one as it started, one just after the
    jobs phase). Frozen, a full collection walks only what came since. And a child no longer
    writes to the pages it shares with the main process when a collection updates their
    objects' GC headers, so they stay shared. Only the `celery worker` program sends this
    signal (not the embedded worker, a thread of the server, which project.collector tunes).
    """
    gc.collect()
    gc.freeze()


@worker_process_init.connect
def _hand_over_the_gil_sooner(**kwargs: object) -> None:
    # A prefork child runs the job on its main thread and publishes from a side thread
    # (realtime.publish). A transition's publish is queued right after its commit, and the side
    # thread then waits for the GIL until the main thread blocks or 5 ms (CPython's switch
    # interval) pass, while the main thread goes on with the next statement or Celery's
    # bookkeeping. At 0.5 ms the job's events leave sooner; the cost, more frequent switches
    # between threads that both want to run, is small for jobs that mostly wait on I/O. Only
    # prefork children get this signal (not the embedded worker, a thread of the server).
    # Paired A/B, 2 x 200 no-op jobs: -2.5 and -0.8 ms per pair (bench/realtime README).
    sys.setswitchinterval(0.0005)


@worker_process_init.connect
def _keep_the_job_connection(**kwargs: object) -> None:
    connection_created.connect(keep_on_the_main_thread, weak=False)


def keep_on_the_main_thread(sender: object, connection: Any, **kwargs: object) -> None:
    """A prefork child runs one job at a time, on its main thread; that thread's connection is
    kept from one job to the next, as CONN_MAX_AGE=None would (the pool forbids that setting:
    a pooled connection is "obsolete" at once and goes back after every job).

    Checking it out of the pool again (Django's connect, the pool, connection_created) was
    0.6 ms of every job's claim (bench/realtime trace). close_old_connections() around each job
    still returns a connection that broke or was left outside autocommit; other threads of the
    child (the lease renewer) return theirs as before.
    """
    if threading.current_thread() is threading.main_thread():
        connection.close_at = None


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
