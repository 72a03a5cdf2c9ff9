from celery.exceptions import SoftTimeLimitExceeded

from domain.common.errors import DomainError

# Raised inside a handler (by Celery, in a prefork child) when its run reaches its soft time
# limit (domain/jobs/time_limits.py). A handler may clean up on its way out; it must re-raise.
JobTimedOut = SoftTimeLimitExceeded


class JobFailed(DomainError):
    """Raised by a handler for an expected failure: the job ends FAILED with this code."""

    code = "JOB_FAILED"


class JobCancelled(Exception):
    """Raised inside a handler by check_cancelled() when a cancel was requested."""


class LeaseLost(Exception):
    """The job was taken over by another worker (our lease expired): stop without writing."""


class IdempotencyConflict(DomainError):
    code = "IDEMPOTENCY_KEY_REUSED"
