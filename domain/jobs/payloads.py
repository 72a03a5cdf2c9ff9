"""What a job's events say about it: a leaf module, shared by the services and the SQL
transitions (domain/jobs/transitions.py), which the services call."""

from __future__ import annotations

from typing import Any

from domain.common.ids import global_id
from domain.jobs.models import Job


def job_event_payload(job: Job, **extra: Any) -> dict[str, Any]:
    return {"jobId": global_id("Job", job.pk), "kind": job.kind, "state": job.state, **extra}
