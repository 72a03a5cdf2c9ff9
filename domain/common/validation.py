"""Model validation as an expected failure: bad input gets a code and the field it concerns."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models

from domain.common.errors import DomainError


def validate_fields(instance: models.Model, *, exclude: Sequence[str] = ()) -> None:
    """`full_clean()` without the uniqueness checks (the constraints settle those, with codes
    of their own): the first invalid field's message, code INVALID_INPUT (as every other
    refusal of bad input: clients switch on one code), path the field's API name.
    Django's ValidationError is not a DomainError, so without this a blank name was masked as an
    unexpected error."""
    try:
        instance.full_clean(exclude=list(exclude), validate_unique=False)
    except ValidationError as error:
        field, messages = next(iter(error.message_dict.items()))
        path = None if field == NON_FIELD_ERRORS else [_api_name(field)]
        raise DomainError(messages[0], code="INVALID_INPUT", path=path) from None


def _api_name(field: str) -> str:
    first, *rest = field.split("_")
    return first + "".join(part.title() for part in rest)
