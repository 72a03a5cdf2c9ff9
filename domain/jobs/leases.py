"""The lease of a running job: kept alive from one side thread per process while its handler
works, however slow its steps; a run whose lease is no longer its own is told so.

The thread is started once per process (a prefork child starts its own): a job does not pay
for a thread start and join (a no-op job's whole run is a few milliseconds).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

from django.conf import settings
from django.db import connection
from django.utils import timezone

from domain.jobs import transitions
from domain.jobs.context import JobContext
from domain.jobs.models import Job, JobState

logger = logging.getLogger("depot.jobs")


class LeaseKeeper:
    """Renews the job's lease from a side thread while the handler works, however slow its
    steps. The thread is the process's lease renewer, started once: a job does not pay for a
    thread start and join (a no-op job's whole run is a few milliseconds)."""

    def __init__(self, context: JobContext) -> None:
        self.context = context

    def __enter__(self) -> LeaseKeeper:
        _renewer().hold(self.context)
        return self

    def __exit__(self, *exc: object) -> None:
        _renewer().release(self.context)


class _LeaseRenewer:
    """Every third of a lease, renews the lease of each job held; one that is no longer ours is
    marked lost (the handler stops at its next progress or cancel check) and dropped."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._held: dict[int, tuple[JobContext, float]] = {}  # id(context) -> (context, due)
        self._thread: threading.Thread | None = None
        # When the thread wakes next: None if it waits for a job, 0 while it is awake.
        self._wakes_at: float | None = 0.0

    def hold(self, context: JobContext) -> None:
        with self._lock:
            # A held job is claimed at its first round (domain/jobs/quick.py).
            held = context.held is not None and context.held.held
            due = time.monotonic() + (settings.DEPOT_JOB_QUICK_SECONDS if held else _renew_every())
            self._held[id(context)] = (context, due)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lease-renewer", daemon=True)
                self._thread.start()
            elif self._wakes_at is None or due < self._wakes_at:
                # Only when it would wake too late: one job after another, each due later
                # than the one before, the thread is not woken (a thread switch, on a no-op
                # job's few milliseconds) per job.
                self._lock.notify()

    def release(self, context: JobContext) -> None:
        with self._lock:
            self._held.pop(id(context), None)

    def _due(self) -> list[JobContext]:
        with self._lock:
            while True:
                now = time.monotonic()
                due = [context for context, at in self._held.values() if at <= now]
                if due:
                    for context in due:
                        self._held[id(context)] = (context, now + _renew_every())
                    return due
                soonest = min((at for _, at in self._held.values()), default=None)
                self._wakes_at = soonest
                self._lock.wait(None if soonest is None else soonest - now)
                self._wakes_at = 0.0

    def _still_held(self, context: JobContext) -> bool:
        with self._lock:
            return id(context) in self._held

    def _run(self) -> None:
        while True:
            due = self._due()
            try:
                for context in due:
                    if not self._still_held(context):
                        continue
                    try:
                        self._renew(context)
                    except Exception:
                        # The thread renews every job of the process: it must not end.
                        logger.exception("renewing the lease of job %s failed", context.job.pk)
            finally:
                with contextlib.suppress(Exception):
                    connection.close()

    def _renew(self, context: JobContext) -> None:
        if context.held is not None and context.held.held:
            if not context.held.claim():
                context.lease_lost = True
                self.release(context)
            return
        try:
            expires = timezone.now() + transitions.lease_duration()
            renewed = Job.objects.filter(
                pk=context.job.pk, state=JobState.RUNNING, lease_token=context.lease_token
            ).update(lease_expires_at=expires)
        except Exception:
            # The database failed this once: try again next round while the lease lasts (it
            # was renewed a third of a lease ago). Once it has run out, the sweeper may give
            # the job to another worker: this run stops at its next check.
            last = context.job.lease_expires_at
            if last is None or timezone.now() >= last:
                logger.exception("job %s: its lease ran out, renewals failing", context.job.pk)
                context.lease_lost = True
                self.release(context)
            else:
                logger.warning("renewing the lease of job %s failed; trying again", context.job.pk)
            return
        if not renewed:
            context.lease_lost = True
            self.release(context)
            return
        context.job.lease_expires_at = expires


def _renew_every() -> float:
    return float(settings.DEPOT_JOB_LEASE_SECONDS) / 3


_lease_renewer: _LeaseRenewer | None = None
_lease_renewer_lock = threading.Lock()


def _renewer() -> _LeaseRenewer:
    global _lease_renewer
    if _lease_renewer is None:
        with _lease_renewer_lock:
            if _lease_renewer is None:
                _lease_renewer = _LeaseRenewer()
    return _lease_renewer


def _forget_renewer_after_fork() -> None:
    # A forked child (a Celery prefork worker) has the object but not the thread.
    global _lease_renewer, _lease_renewer_lock
    _lease_renewer = None
    _lease_renewer_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_renewer_after_fork)
