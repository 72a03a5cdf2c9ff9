from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
import strawberry_django
from django.db.models import Q
from strawberry import relay
from strawberry.scalars import JSON
from strawberry_django.relay import DjangoListConnection

from domain.common.text import column_limit
from domain.jobs.models import Event, Job
from domain.jobs.stats import JobStats
from schema.errors import key_of
from schema.limits import list_limit, text_limit
from schema.scalars import BigInt
from schema.types.fields import model_connection, model_field
from schema.types.scoping import DepotNode, in_memory, scoped_to_workspaces


@strawberry.enum(
    name="JobState", description="Where a job is: QUEUED, RUNNING, then a final state."
)
class JobStateEnum(Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@strawberry.enum(name="Lane", description="The queue a job runs on.")
class LaneEnum(Enum):
    INTERACTIVE = "interactive"
    BULK = "bulk"
    MAINTENANCE = "maintenance"


@strawberry.type(description="How far a job has got.")
class JobProgress:
    done: BigInt = strawberry.field(description="Units of work done.")
    total: BigInt | None = strawberry.field(description="Units in all, when known.")
    stage: str = strawberry.field(description="The current step, e.g. downloading.")


@strawberry.type(description="Why a job failed.")
class JobError:
    code: str = strawberry.field(description="A stable code, e.g. CORRUPT_FILE.")
    message: str = strawberry.field(description="A human-readable explanation.")


@strawberry_django.filter_type(Job)
class JobFilter:
    state: JobStateEnum | None = strawberry_django.filter_field(description="Only this state.")
    kind: str | None = strawberry_django.filter_field(
        description="Only this kind.", metadata=text_limit(column_limit(Job, "kind"))
    )
    lane: LaneEnum | None = strawberry_django.filter_field(description="Only this lane.")

    @strawberry_django.filter_field(
        description="Only jobs in one of these states.", metadata=list_limit()
    )
    def state_in(self, value: list[JobStateEnum], prefix: str) -> Q:
        return Q(**{f"{prefix}state__in": [state.value for state in value]})

    @strawberry_django.filter_field(description="Only jobs started by this user.")
    def created_by(self, value: relay.GlobalID, prefix: str) -> Q:
        return Q(**{f"{prefix}created_by_id": key_of(value, "User") or 0})

    @strawberry_django.filter_field(description="Only jobs queued at or after this time.")
    def created_after(self, value: datetime, prefix: str) -> Q:
        return Q(**{f"{prefix}created_at__gte": value})

    @strawberry_django.filter_field(description="Only jobs queued before this time.")
    def created_before(self, value: datetime, prefix: str) -> Q:
        return Q(**{f"{prefix}created_at__lt": value})

    @strawberry_django.filter_field(description="Only top-level jobs (true) or only children.")
    def top_level(self, value: bool, prefix: str) -> Q:
        return Q(**{f"{prefix}parent__isnull": value})


@strawberry_django.order_type(Job, description="How to order jobs.")
class JobOrder:
    created_at: strawberry.auto = strawberry_django.order_field(description="By queue time.")
    finished_at: strawberry.auto = strawberry_django.order_field(description="By end time.")


@strawberry_django.type(Job, name="Job", description="Slow work, run by a worker, watched live.")
class JobType(DepotNode):
    kind: str = model_field(description="What the job does, e.g. asset.process.")
    parameters: JSON = model_field(description="The job's input.")
    result: JSON | None = model_field(description="What it produced, once done.")
    attempts: int = model_field(description="How many times a worker took it.")
    cancel_requested: bool = model_field(description="A cancel is pending.")
    created_at: datetime = model_field(description="When it was queued.")
    started_at: datetime | None = model_field(description="When it last started.")
    finished_at: datetime | None = model_field(description="When it ended.")
    parent: JobType | None = model_field(description="The batch job it belongs to.")
    children: DjangoListConnection[JobType] = model_connection(
        description="Its child jobs, for a batch.", filters=JobFilter
    )

    get_queryset = scoped_to_workspaces("workspace_id")

    @strawberry_django.field(description="Who started it.", only=["created_by_id"])
    @in_memory
    def created_by(self) -> relay.GlobalID | None:
        pk = self.created_by_id  # type: ignore[attr-defined]
        return None if pk is None else relay.GlobalID("User", str(pk))

    # The columns hold the enums' values, which the GraphQL enums serialize as they are.
    state: JobStateEnum = model_field(description="Where the job is.")
    lane: LaneEnum = model_field(description="The queue it runs on.")

    @strawberry_django.field(
        description="How far it has got.",
        only=["progress_done", "progress_total", "progress_stage"],
    )
    @in_memory
    def progress(self) -> JobProgress:
        job: Any = self
        return JobProgress(
            done=job.progress_done, total=job.progress_total, stage=job.progress_stage
        )

    @strawberry_django.field(description="Why it failed, if it did.", only=["error"])
    @in_memory
    def error(self) -> JobError | None:
        error: dict[str, Any] | None = self.error
        if not error:
            return None
        return JobError(code=error["code"], message=error["message"])


@strawberry.type(name="Event", description="A durable record of a change, in commit order.")
class EventType:
    sequence: BigInt = strawberry.field(
        description="Increases in commit order within the workspace: the resume cursor."
    )
    type: str = strawberry.field(description="What happened, e.g. job.succeeded.")
    topic: str = strawberry.field(description="The kind of object, e.g. job or asset.")
    payload: JSON = strawberry.field(description="Ids (global ids) and details.")
    created_at: datetime = strawberry.field(description="When it was recorded.")

    @classmethod
    def from_model(cls, event: Event) -> EventType:
        return cls(
            sequence=event.sequence,  # type: ignore[arg-type]
            type=event.type,
            topic=event.topic,
            payload=event.payload,
            created_at=event.created_at,
        )

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> EventType:
        return cls(
            sequence=message["sequence"],
            type=message["event_type"],
            topic=message["event_type"].partition(".")[0],
            payload=message["payload"],
            created_at=datetime.fromisoformat(message["created_at"]),
        )


@strawberry.type(description="How many jobs are in one state on one lane.")
class JobCount:
    state: JobStateEnum = strawberry.field(description="The state.")
    lane: LaneEnum = strawberry.field(description="The lane.")
    count: int = strawberry.field(description="How many jobs.")


@strawberry.type(description="Jobs that ended in one minute.")
class JobThroughput:
    minute: datetime = strawberry.field(description="The minute's start.")
    succeeded: int = strawberry.field(description="Jobs that succeeded in it.")
    failed: int = strawberry.field(description="Jobs that failed in it.")


@strawberry.type(description="A workspace's jobs at a glance, for dashboards.")
class JobStatsType:
    counts: list[JobCount] = strawberry.field(description="Jobs per state and lane.")
    throughput: list[JobThroughput] = strawberry.field(
        description="Finished jobs per minute over the window (minutes with none are left out)."
    )
    window_minutes: int = strawberry.field(description="The throughput window.")

    @classmethod
    def from_domain(cls, stats: JobStats) -> JobStatsType:
        return cls(
            counts=[
                JobCount(state=JobStateEnum(state), lane=LaneEnum(lane), count=n)
                for state, lane, n in stats.by_state_and_lane
            ],
            throughput=[
                JobThroughput(minute=minute, succeeded=ok, failed=failed)
                for minute, ok, failed in stats.finished_per_minute
            ],
            window_minutes=stats.window_minutes,
        )
