from domain.common.errors import DomainError


class JobFailed(DomainError):
    """Raised by a handler for an expected failure: the job ends FAILED with this code."""

    code = "JOB_FAILED"


class JobCancelled(Exception):
    """Raised inside a handler by check_cancelled() when a cancel was requested."""


class LeaseLost(Exception):
    """The job was taken over by another worker (our lease expired): stop without writing."""


class IdempotencyConflict(DomainError):
    code = "IDEMPOTENCY_KEY_REUSED"
