"""The beat schedule (run `celery -A project beat`, or a worker with -B)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from domain.jobs.lanes import Lane


def beat_schedule() -> dict[str, dict[str, Any]]:
    return {
        "sweep-jobs": {
            "task": "depot.sweep_jobs",
            "schedule": settings.DEPOT_SWEEP_INTERVAL_SECONDS,
            "options": {
                "queue": Lane.MAINTENANCE.queue,
                "expires": settings.DEPOT_SWEEP_INTERVAL_SECONDS,
            },
        }
    }
