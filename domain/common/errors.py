"""Errors that services raise for expected failures. Each carries a stable code for clients."""

from __future__ import annotations

from collections.abc import Sequence


class DomainError(Exception):
    """An expected failure: the API turns it into a typed error with this code and field path.
    Without a code of its own it is bad input, the one code for every refusal of what the
    client sent (a blank or malformed field, text over its limit)."""

    code = "INVALID_INPUT"

    def __init__(
        self, message: str, *, code: str | None = None, path: Sequence[str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.path = list(path) if path else None


class NotFound(DomainError):
    """Missing, or in a workspace the caller cannot see: the two are indistinguishable."""

    code = "NOT_FOUND"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class InvalidState(DomainError):
    """The object exists but is not in a state that allows the operation."""

    code = "INVALID_STATE"
