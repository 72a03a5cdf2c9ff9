"""Model fields of Depot's types, with a fast path for plain columns.

strawberry resolves a "basic" field (no resolver, no extensions) with a bare attribute read,
and everything else through its full per-field wrapper: an `Info` object, argument parsing and
the field-extension chain, for every value. strawberry-django marks all of its fields as not
basic, because some of them do need that wrapper (relations, connections, resolvers). On the
dashboard query most values are plain columns (title, size, preset, width, height...): about
2,800 of 3,100 resolved values, each paying the wrapper for nothing (bench/http/PROFILE.md,
third session).

`DepotField` is strawberry-django's field, marked basic when it is a plain column: no resolver,
no extensions (so no permission classes), no arguments, not a relation, and the model attribute
is Django's plain `DeferredAttribute` (not a file, not a foreign key id, not a property). Its
value is then read from the instance's `__dict__`, which is where Django keeps a loaded column.
A column the query did not load (deferred) takes strawberry-django's own path, which loads it
(through a thread hop in async execution), exactly as before. Everything else is unchanged.

It also tells `schema/execution.py`'s compiled plans what they may read directly: the column
(`column_attname`), or, for a plain to-many relation, where a prefetch keeps its rows
(`prefetch_cache_name`).
"""

from __future__ import annotations

import functools
from typing import Any

import strawberry_django
from django.db.models.fields.related_descriptors import ReverseManyToOneDescriptor
from django.db.models.query_utils import DeferredAttribute
from strawberry_django.fields.field import StrawberryDjangoField

_NOT_A_COLUMN = ""


class DepotField(StrawberryDjangoField):
    def _plain_model_attribute(self) -> Any:
        """The model's attribute behind this field when the field is a plain declaration (no
        resolver, extensions, permission classes or arguments), else None."""
        django_type = self.origin_django_type
        if (
            django_type is None
            or self.base_resolver is not None
            or self.extensions
            or self.permission_classes
            or self.arguments
        ):
            return None
        return getattr(django_type.model, self.django_name or self.python_name, None)

    @functools.cached_property
    def column_attname(self) -> str:
        """The instance attribute of the plain column this field reads, or "" if it is not one."""
        if self.is_relation or self.django_type is not None:
            return _NOT_A_COLUMN
        attr = self._plain_model_attribute()
        if type(attr) is not DeferredAttribute:
            return _NOT_A_COLUMN
        return str(attr.field.attname)

    @functools.cached_property
    def prefetch_cache_name(self) -> str:
        """For a plain to-many relation (a reverse foreign key, no arguments, no resolver): the
        key under which a prefetch keeps its rows on the instance; "" otherwise."""
        if not self.is_list or self.is_connection or self.is_paginated:
            return _NOT_A_COLUMN
        attr = self._plain_model_attribute()
        if type(attr) is not ReverseManyToOneDescriptor:
            return _NOT_A_COLUMN
        return str(attr.rel.cache_name)

    @property
    def is_basic_field(self) -> bool:
        return bool(self.column_attname)

    def get_result(self, source: Any, info: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        attname = self.column_attname
        if attname:
            try:
                return source.__dict__[attname]
            except (KeyError, AttributeError):
                pass  # deferred, or not a model instance: strawberry-django's path
        return super().get_result(source, info, args, kwargs)


def model_field(**kwargs: Any) -> Any:
    """`strawberry_django.field` for a model attribute of a Depot type (see the module)."""
    return strawberry_django.field(field_cls=DepotField, **kwargs)
