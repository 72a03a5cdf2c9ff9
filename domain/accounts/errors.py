from domain.common.errors import DomainError


class InvalidToken(DomainError):
    """The bearer token is unknown, revoked or expired. One code for all, so it leaks nothing."""

    code = "INVALID_TOKEN"


class SlugTaken(DomainError):
    code = "SLUG_TAKEN"
