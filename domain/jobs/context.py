"""What a job handler gets: its job, progress reporting, cooperative cancel, a log."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from time import monotonic
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone

from domain.jobs.errors import JobCancelled, LeaseLost
from domain.jobs.models import Job, JobState
from realtime import publish

if TYPE_CHECKING:
    from domain.jobs.quick import HeldJob

logger = logging.getLogger("depot.jobs")


@dataclass
class JobContext:
    job: Job
    lease_token: str
    _last_progress_write: float = 0.0
    _last_stage: str = ""
    _last_cancel_check: float = 0.0
    lease_lost: bool = field(default=False)
    # Until claimed, a quick run's job is held by a lock on its row (domain/jobs/quick.py).
    held: HeldJob | None = None

    @property
    def parameters(self) -> dict[str, Any]:
        return self.job.parameters

    def _mine(self) -> Any:
        """Our job's row, as a running job's: a job still held is claimed first."""
        if self.held is not None and self.held.held and not self.held.claim():
            self.lease_lost = True
            raise LeaseLost(f"job {self.job.pk} is no longer ours")
        return Job.objects.filter(
            pk=self.job.pk, state=JobState.RUNNING, lease_token=self.lease_token
        )

    def progress(self, done: int, total: int | None = None, stage: str = "") -> None:
        """Report progress. Writes are coalesced to a few a second; stage changes always go."""
        now = monotonic()
        finished = total is not None and done >= total
        if (
            stage == self._last_stage
            and not finished
            and now - self._last_progress_write < settings.DEPOT_PROGRESS_MIN_INTERVAL
        ):
            return
        if self.held is not None and self.held.keep_progress(done, total, stage):
            # Held: kept on the job, written by the claim or the end, whichever comes first.
            self._last_progress_write = now
            self._last_stage = stage
            return
        updated = self._mine().update(
            progress_done=done,
            progress_total=total,
            progress_stage=stage,
            updated_at=timezone.now(),
        )
        if not updated:
            self.lease_lost = True
            raise LeaseLost(f"job {self.job.pk} is no longer ours")
        self._last_progress_write = now
        self._last_stage = stage
        self.job.progress_done, self.job.progress_total, self.job.progress_stage = (
            done,
            total,
            stage,
        )
        publish.publish_job_progress(self.job.pk, self.job.workspace_id)

    def check_cancelled(self) -> None:
        """Raise JobCancelled if a cancel was requested; reads the ledger twice a second at most."""
        if self.lease_lost:
            raise LeaseLost(f"job {self.job.pk} is no longer ours")
        if self.held is not None and self.held.held:
            return  # no cancel can be pending: it waits for the lock on the row
        now = monotonic()
        if now - self._last_cancel_check < 0.5:
            return
        self._last_cancel_check = now
        row = self._mine().values_list("cancel_requested", flat=True).first()
        if row is None:
            self.lease_lost = True
            raise LeaseLost(f"job {self.job.pk} is no longer ours")
        if row:
            raise JobCancelled()

    def log(self, message: str, *args: Any, level: int = logging.INFO) -> None:
        logger.log(level, f"[job {self.job.pk} {self.job.kind}] {message}", *args)
