from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
import strawberry_django
from strawberry import relay
from strawberry.scalars import JSON

from domain.jobs.models import Event, Job
from schema.scalars import BigInt


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
    kind: str | None = strawberry_django.filter_field(description="Only this kind.")
    lane: LaneEnum | None = strawberry_django.filter_field(description="Only this lane.")


@strawberry_django.type(Job, name="Job", description="Slow work, run by a worker, watched live.")
class JobType(relay.Node):
    kind: str = strawberry_django.field(description="What the job does, e.g. asset.process.")
    parameters: JSON = strawberry_django.field(description="The job's input.")
    result: JSON | None = strawberry_django.field(description="What it produced, once done.")
    attempts: int = strawberry_django.field(description="How many times a worker took it.")
    cancel_requested: bool = strawberry_django.field(description="A cancel is pending.")
    created_at: datetime = strawberry_django.field(description="When it was queued.")
    started_at: datetime | None = strawberry_django.field(description="When it last started.")
    finished_at: datetime | None = strawberry_django.field(description="When it ended.")

    @strawberry_django.field(description="Where the job is.", only=["state"])
    def state(self) -> JobStateEnum:
        return JobStateEnum(self.state)

    @strawberry_django.field(description="The queue it runs on.", only=["lane"])
    def lane(self) -> LaneEnum:
        return LaneEnum(self.lane)

    @strawberry_django.field(
        description="How far it has got.",
        only=["progress_done", "progress_total", "progress_stage"],
    )
    def progress(self) -> JobProgress:
        job: Any = self
        return JobProgress(
            done=job.progress_done, total=job.progress_total, stage=job.progress_stage
        )

    @strawberry_django.field(description="Why it failed, if it did.", only=["error"])
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
