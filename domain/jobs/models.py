from __future__ import annotations

from django.conf import settings
from django.db import models

from domain.accounts.models import Workspace
from domain.jobs.lanes import Lane

__all__ = ["FINAL_STATES", "Event", "EventCounter", "IdempotencyKey", "Job", "JobState", "Lane"]


class JobState(models.TextChoices):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


FINAL_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class Job(models.Model):
    """One piece of slow work, from the mutation that starts it to its final state."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=64, help_text="What the job does, e.g. asset.process.")
    lane = models.CharField(max_length=16, choices=Lane.choices, help_text="The queue it runs on.")
    state = models.CharField(
        max_length=16, choices=JobState.choices, default=JobState.QUEUED, help_text="Where it is."
    )
    parameters = models.JSONField(default=dict, help_text="The job's input.")
    result = models.JSONField(null=True, blank=True, help_text="What it produced, once done.")
    error = models.JSONField(null=True, blank=True, help_text="Code and message if it failed.")
    progress_done = models.BigIntegerField(default=0, help_text="Units of work done.")
    progress_total = models.BigIntegerField(null=True, blank=True, help_text="Units in all.")
    progress_stage = models.CharField(max_length=64, blank=True, help_text="The current step.")
    attempts = models.PositiveIntegerField(default=0, help_text="How many times it was claimed.")
    max_attempts = models.PositiveIntegerField(default=3)
    lease_token = models.CharField(max_length=36, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # When the current (or last) run's hard time limit ends, if its worker enforces one
    # (domain/jobs/time_limits.py): a run whose lease outlived it was killed, not lost.
    deadline_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False, help_text="A cancel is pending.")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    # NULL, not "", for "no key": the unique constraint must ignore jobs without one.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When it was queued.")
    updated_at = models.DateTimeField(auto_now=True)
    dispatched_at = models.DateTimeField(null=True, blank=True, help_text="When last sent.")
    # The sweeper's schedule (domain/jobs/sweeper.py): when it may send the job again if no
    # worker has claimed it (or, running, once its lease has expired), and how many times it
    # has sent it since the job was queued or last claimed. NULL is due at once: a row written
    # by a release before the schedule (a rolling deploy) has none. The database's default
    # lets such a release insert jobs (migration 0003, docs/operations.md). A run killed by its
    # time limit is never sent again: for it, they schedule the tries of its end while its
    # kind's on_abandon hook fails (runner.end_timed_out).
    next_dispatch_at = models.DateTimeField(null=True, blank=True)
    redispatches = models.IntegerField(default=0, db_default=0)
    started_at = models.DateTimeField(null=True, blank=True, help_text="When it last started.")
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When it ended.")

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="job_unique_idempotency_key",
            )
        ]
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="job_ws_created"),
            # The sweeper reads the due QUEUED jobs as one range of this index (the jobs of a
            # backlog that are not due yet are never read), the RUNNING ones of the next.
            models.Index(fields=["state", "next_dispatch_at"], name="job_state_next_dispatch"),
            models.Index(fields=["state", "lease_expires_at"], name="job_state_lease"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}#{self.pk} {self.state}"

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


class EventCounter(models.Model):
    """The last sequence number given to an event of one workspace.

    Incrementing this row in the transaction that writes an event locks it until commit, so a
    workspace's events get sequence numbers in commit order (see docs/architecture.md).
    """

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, primary_key=True)
    last_sequence = models.BigIntegerField(default=0)
    pruned_through = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.workspace_id}@{self.last_sequence}"


class Event(models.Model):
    """A durable record of something that happened in a workspace, in commit order."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="events")
    sequence = models.BigIntegerField(help_text="Increases in commit order within a workspace.")
    type = models.CharField(max_length=64, help_text="What happened, e.g. job.succeeded.")
    payload = models.JSONField(default=dict, help_text="Ids and details of what happened.")
    created_at = models.DateTimeField(auto_now_add=True, help_text="When it was recorded.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "sequence"], name="event_unique_sequence")
        ]

    def __str__(self) -> str:
        return f"{self.type}@{self.sequence}"

    @property
    def topic(self) -> str:
        return self.type.partition(".")[0]


class IdempotencyKey(models.Model):
    """A client's idempotency key: the request it first came with, and what that returned."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    operation = models.CharField(max_length=64)
    fingerprint = models.CharField(max_length=64)
    result = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "key"], name="idempotency_unique_key")
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self) -> str:
        return f"{self.operation}:{self.key}"
