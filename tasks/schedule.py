"""The beat schedule (run `celery -A project beat`, or a worker with -B)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from domain.jobs.lanes import Lane

# Multipart uploads expire after DEPOT_MULTIPART_EXPIRY_HOURS (a week by default): looking once
# an hour is often enough, and lists the bucket's pending uploads no more often than that.
MULTIPART_SWEEP_SECONDS = 3600.0
# Object removals (domain/assets/object_removals.py) left by a stopped worker or refused by the
# store: the first retry is a minute after a refusal; a sweep with nothing due reads one range
# of an index.
OBJECT_REMOVAL_SWEEP_SECONDS = 60.0


def beat_schedule() -> dict[str, dict[str, Any]]:
    return {
        "sweep-jobs": {
            "task": "depot.sweep_jobs",
            "schedule": settings.DEPOT_SWEEP_INTERVAL_SECONDS,
            "options": {
                "queue": Lane.MAINTENANCE.queue,
                "expires": settings.DEPOT_SWEEP_INTERVAL_SECONDS,
            },
        },
        "expire-multipart-uploads": {
            "task": "depot.expire_multipart_uploads",
            "schedule": MULTIPART_SWEEP_SECONDS,
            "options": {"queue": Lane.MAINTENANCE.queue, "expires": MULTIPART_SWEEP_SECONDS},
        },
        "remove-objects": {
            "task": "depot.remove_objects",
            "schedule": OBJECT_REMOVAL_SWEEP_SECONDS,
            "options": {
                "queue": Lane.MAINTENANCE.queue,
                "expires": OBJECT_REMOVAL_SWEEP_SECONDS,
            },
        },
    }
