from domain.common.errors import DomainError


class InvalidToken(DomainError):
    """The bearer token is unknown, revoked or expired. One code for all, so it leaks nothing."""

    code = "INVALID_TOKEN"


class SlugTaken(DomainError):
    code = "SLUG_TAKEN"


class LastOwner(DomainError):
    """A workspace must keep at least one owner."""

    code = "LAST_OWNER"


class UserNotFound(DomainError):
    code = "USER_NOT_FOUND"
