from __future__ import annotations

import strawberry
from strawberry import relay

from domain.jobs import selectors, services
from domain.jobs.models import Job
from schema.context import Info, actor_of
from schema.errors import UserError, decode_id
from schema.mutations import attempt
from schema.types.jobs import JobType


@strawberry.type(description="The result of jobCancel or jobRetry.")
class JobPayload:
    job: JobType | None = strawberry.field(description="The job after the change.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type
class JobMutations:
    @strawberry.mutation(
        description="Cancel a job: a queued one at once, a running one as soon as its handler "
        "checks (cancelRequested is true meanwhile)."
    )
    async def job_cancel(self, info: Info, id: relay.GlobalID) -> JobPayload:
        def call() -> Job:
            actor = actor_of(info)
            job = selectors.job_get_for(actor=actor, job_id=decode_id(id, "Job"))
            return services.job_cancel(job=job, actor=actor)

        job, errors = await attempt(info, call)
        return JobPayload(job=job, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(description="Run a failed or cancelled job again.")
    async def job_retry(self, info: Info, id: relay.GlobalID) -> JobPayload:
        def call() -> Job:
            actor = actor_of(info)
            job = selectors.job_get_for(actor=actor, job_id=decode_id(id, "Job"))
            return services.job_retry(job=job, actor=actor)

        job, errors = await attempt(info, call)
        return JobPayload(job=job, errors=errors)  # type: ignore[arg-type]
