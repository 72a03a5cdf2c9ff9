"""Numbers a dashboard draws: jobs per state and lane, and recent throughput."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.utils import timezone

from domain.jobs.models import Job, JobState


@dataclass(frozen=True)
class JobStats:
    by_state_and_lane: list[tuple[str, str, int]]
    finished_per_minute: list[tuple[datetime, int, int]]  # minute, succeeded, failed
    window_minutes: int


def job_stats(*, workspace_id: int, window_minutes: int = 15) -> JobStats:
    jobs = Job.objects.filter(workspace_id=workspace_id)
    counts = (
        jobs.order_by()
        .values_list("state", "lane")
        .annotate(n=Count("pk"))
        .order_by("state", "lane")
    )
    since = timezone.now() - timedelta(minutes=window_minutes)
    finished = (
        jobs.filter(finished_at__gte=since, state__in=[JobState.SUCCEEDED, JobState.FAILED])
        .annotate(minute=TruncMinute("finished_at"))
        .order_by()
        .values_list("minute", "state")
        .annotate(n=Count("pk"))
    )
    per_minute: dict[datetime, list[int]] = {}
    for minute, state, n in finished:
        bucket = per_minute.setdefault(minute, [0, 0])
        bucket[0 if state == JobState.SUCCEEDED else 1] += n
    return JobStats(
        by_state_and_lane=[(state, lane, n) for state, lane, n in counts],
        finished_per_minute=[(m, s, f) for m, (s, f) in sorted(per_minute.items())],
        window_minutes=window_minutes,
    )
