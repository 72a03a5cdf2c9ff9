"""Length limits on free text taken from the API.

The request body may be 2.5 MB; every text a client can have stored has a limit far below it,
checked by the service that stores it, so every way in (GraphQL, a bulk edit, a websocket
mutation, a task) gets the same answer: INVALID_INPUT naming the field and its limit. Text is
refused, never cut short: a stored value is always the one the client sent (or its stripped
form, where the service strips). Limits count characters, as Postgres' varchar does.

Text a client only looks things up with (a filter's `titleContains`, a member's login, a
part's ETag) has a limit too, the longest value it could match: longer text finds nothing
anyway, and would only make the database (or a message echoing it) work on megabytes.
"""

from __future__ import annotations

from collections.abc import Sequence, Sized

from django.db import models

from domain.common.errors import DomainError

# Longer texts (descriptions); names and titles are their columns' max_length.
DESCRIPTION_MAX_LENGTH = 10_000


class TextTooLong(DomainError):
    code = "INVALID_INPUT"


def require_length(value: str, *, limit: int, path: Sequence[str]) -> str:
    """`value`, or TextTooLong if it has more than `limit` characters."""
    if len(value) > limit:
        raise TextTooLong(
            f"`{path[-1]}` has at most {limit:,} characters; this one has {len(value):,}.",
            path=path,
        )
    return value


class TooManyItems(DomainError):
    code = "INVALID_INPUT"


def require_items(values: Sized, *, limit: int, path: Sequence[str]) -> None:
    """TooManyItems if the list has more than `limit` items."""
    if len(values) > limit:
        raise TooManyItems(
            f"`{path[-1]}` has at most {limit:,} items; this one has {len(values):,}.", path=path
        )


def column_limit(model: type[models.Model], field: str) -> int:
    """The max_length of a model's text column (what Postgres would refuse beyond)."""
    column = model._meta.get_field(field)
    limit = getattr(column, "max_length", None)
    assert isinstance(limit, int), f"{model.__name__}.{field} has no max_length"
    return limit
