from __future__ import annotations

import strawberry
from strawberry import relay

from domain.jobs import selectors, services
from domain.jobs.models import Job
from schema.context import Info, actor_of
from schema.errors import UserError, decode_id
from schema.mutations import Once, attempt, attempt_once, either_mode
from schema.types.jobs import JobType


@strawberry.type(description="The result of jobCancel or jobRetry.")
class JobPayload:
    job: JobType | None = strawberry.field(description="The job after the change.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


def _job(info: Info, id: relay.GlobalID) -> Job:
    return selectors.job_get_for(actor=actor_of(info), job_id=decode_id(id, "Job"))


def job_once(info: Info, operation: str, key: str | None, request: object, job: object) -> Once:
    return Once(
        key=key,
        operation=operation,
        request=request,
        workspace_of=lambda: _job(info, job).workspace_id,  # type: ignore[arg-type]
        remember=lambda result: {"job": result.pk},
        recall=lambda ref: Job.objects.get(pk=ref["job"]),
    )


@strawberry.type
class JobMutations:
    @strawberry.mutation(
        description="Cancel a job: a queued one at once, a running one as soon as its handler "
        "checks (cancelRequested is true meanwhile)."
    )
    @either_mode
    def job_cancel(self, info: Info, id: relay.GlobalID) -> JobPayload:
        def call() -> Job:
            return services.job_cancel(job_id=decode_id(id, "Job"), actor=actor_of(info))

        job, errors = attempt(info, call)
        return JobPayload(job=job, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(
        description="Run a failed or cancelled job again. With an idempotency key, a repeat "
        "returns the same job and retries nothing."
    )
    @either_mode
    def job_retry(
        self, info: Info, id: relay.GlobalID, idempotency_key: str | None = None
    ) -> JobPayload:
        def call() -> Job:
            return services.job_retry(job_id=decode_id(id, "Job"), actor=actor_of(info))

        once = job_once(info, "jobRetry", idempotency_key, {"id": str(id)}, id)
        job, errors = attempt_once(info, once, call)
        return JobPayload(job=job, errors=errors)  # type: ignore[arg-type]
