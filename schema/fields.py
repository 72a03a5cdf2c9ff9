"""Field classes shared by the schema's root fields."""

from __future__ import annotations

import inspect
from typing import Any

import strawberry_django
from django.db.models import Model, QuerySet
from strawberry import relay
from strawberry.extensions import FieldExtension
from strawberry.types import Info
from strawberry_django.fields.field import StrawberryDjangoField

from schema.errors import key_of


class OneObjectField(StrawberryDjangoField):
    """A field for one object by its primary key, null when the caller cannot see it.

    The resolver returns a QuerySet filtered to that key; strawberry-django then runs the
    type's `get_queryset` and the optimizer on it, as for any field, and slices it to one row.
    It would take the row with `.first()`, ordered by the model's ordering (an asset:
    `-created_at, -pk`): for one key that order is meaningless, yet Django resolves and
    compiles it on every request (building and compiling the asset's query: 0.75 ms with it,
    0.47 ms without, in process on the bench box; bench/http/PROFILE.md, ninth session). This
    takes the row with no ORDER BY.
    """

    def get_queryset_hook(self, info: Any, **kwargs: Any) -> Any:
        if not self.is_optional or self.is_list or self.is_connection or self.is_paginated:
            return super().get_queryset_hook(info, **kwargs)

        def qs_hook(queryset: QuerySet[Any]) -> Model | None:
            # get_queryset already sliced it to one row (strawberry-django's implicit LIMIT 1
            # for an optional object); only the order goes.
            queryset = self.get_queryset(queryset, info, **kwargs).all()
            queryset.query.clear_ordering(force=True, clear_default=True)
            return next(iter(queryset), None)

        return qs_hook


def one_object(description: str) -> Any:
    """`@strawberry_django.field` for a resolver that filters its QuerySet to one primary key."""
    return strawberry_django.field(description=description, field_cls=OneObjectField)


# What an id that names nothing Depot has becomes: a well-formed id no row has (keys start at 1).
_NOTHING = relay.GlobalID("Asset", "0")


class IdsOfNothingAreMissing(FieldExtension):
    """`node` and `nodes`: an id of a type that is no Node (`Viewer:1`), of no type at all, or
    with a key that is no number (`Asset:abc`) resolves to null like an id that does not exist,
    instead of an INTERNAL_ERROR (in `nodes`, one such id nulled the whole list)."""

    def resolve(self, next_: Any, source: Any, info: Info, **kwargs: Any) -> Any:
        return next_(source, info, **_known(info, kwargs))

    async def resolve_async(self, next_: Any, source: Any, info: Info, **kwargs: Any) -> Any:
        result = next_(source, info, **_known(info, kwargs))
        return await result if inspect.isawaitable(result) else result


def _known(info: Info, kwargs: dict[str, Any]) -> dict[str, Any]:
    if "id" in kwargs:
        kwargs["id"] = _known_id(info, kwargs["id"])
    if "ids" in kwargs:
        kwargs["ids"] = [_known_id(info, global_id) for global_id in kwargs["ids"]]
    return kwargs


def _known_id(info: Info, global_id: relay.GlobalID) -> relay.GlobalID:
    try:
        node_type = global_id.resolve_type(info)
    except Exception:  # strawberry's own lookup: no such type in the schema
        return _NOTHING
    if not (isinstance(node_type, type) and issubclass(node_type, relay.Node)):
        return _NOTHING
    if key_of(global_id, global_id.type_name) is None:
        return _NOTHING
    return global_id
