"""A job kind that does nothing, for the mutation-to-client loop.

Depot registers no such kind (its kinds are asset.process, asset.delete and collection.delete), so
the bench registers one here, in the same registry and lane the real kinds use. Loaded by the
bench's AppConfig, so the server and the Celery worker both know it.
"""

from __future__ import annotations

from typing import Any

from domain.jobs import registry
from domain.jobs.context import JobContext
from domain.jobs.models import Lane

NOOP_JOB = "bench.noop"


@registry.register(NOOP_JOB, lane=Lane.INTERACTIVE)
def noop(ctx: JobContext) -> dict[str, Any]:
    return {}
