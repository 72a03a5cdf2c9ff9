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
(`column_attname`), for a plain to-many relation where a prefetch keeps its rows
(`prefetch_cache_name`), and for a plain connection over one (`model_connection`) where its
page is prefetched and how strawberry-django builds the connection from it
(`prefetched_connection`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import strawberry_django
from django.db.models.fields.related_descriptors import ReverseManyToOneDescriptor
from django.db.models.query_utils import DeferredAttribute
from strawberry import relay
from strawberry_django.fields.field import (
    StrawberryDjangoConnectionExtension,
    StrawberryDjangoField,
)
from strawberry_django.relay import DjangoListConnection
from strawberry_django.relay.utils import resolve_edge_class

_NOT_A_COLUMN = ""
# The connection methods strawberry-django answers a prefetched page with.
_PREFETCHED_PAGE_METHODS = (
    "resolve_connection",
    "resolve_optimized_connection_by_prefetch",
    "resolve_node",
)


def _default_connection_resolver(resolver: Any) -> bool:
    """No resolver, or the one strawberry-django's connection extension gives a field without
    one (for a nested field it reads the relation's `.all()`, the prefetched rows)."""
    if resolver is None:
        return True
    wrapped = getattr(resolver, "wrapped_func", None)
    return (
        getattr(wrapped, "__qualname__", "")
        == "StrawberryDjangoConnectionExtension.apply.<locals>.default_resolver"
        and getattr(wrapped, "__module__", "") == StrawberryDjangoConnectionExtension.__module__
    )


@dataclass(frozen=True)
class PrefetchedConnection:
    """A plain connection over a reverse foreign key: the prefetch's cache name, and the
    connection and edge types strawberry-django builds its answer with."""

    cache_name: str
    connection_type: type[DjangoListConnection[Any]]
    edge_type: type[relay.Edge[Any]]


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

    @functools.cached_property
    def prefetched_connection(self) -> PrefetchedConnection | None:
        """For a connection over a reverse foreign key with nothing of its own (no resolver of
        its own, no extension but strawberry-django's connection extension, no permission
        classes, the stock `DjangoListConnection` methods): how its prefetched page is found
        and answered. Its arguments are not needed there: the optimizer applied them to the
        prefetch."""
        django_type = self.origin_django_type
        if (
            not self.is_connection
            or django_type is None
            or not _default_connection_resolver(self.base_resolver)
            or self.permission_classes
            or len(self.extensions) != 1
            or type(self.extensions[0]) is not StrawberryDjangoConnectionExtension
        ):
            return None
        connection_type = self.extensions[0].connection_type
        if not (
            isinstance(connection_type, type)
            and issubclass(connection_type, DjangoListConnection)
            and all(
                getattr(connection_type, name).__func__
                is getattr(DjangoListConnection, name).__func__
                for name in _PREFETCHED_PAGE_METHODS
            )
        ):
            return None
        attr = getattr(django_type.model, self.django_name or self.python_name, None)
        if type(attr) is not ReverseManyToOneDescriptor:
            return None
        return PrefetchedConnection(
            cache_name=str(attr.rel.cache_name),
            connection_type=connection_type,
            edge_type=resolve_edge_class(connection_type),
        )

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


def model_connection(**kwargs: Any) -> Any:
    """`strawberry_django.connection` for a to-many relation of a Depot type (see the
    module)."""
    return strawberry_django.connection(field_cls=DepotField, **kwargs)
