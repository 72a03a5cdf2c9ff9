"""Tenant scoping for every model type.

strawberry-django calls a type's `get_queryset` wherever it loads that type: top-level fields,
nested relations (through the optimizer's prefetches), `node` and `nodes`. Defining it on every
type means no entry point can forget the workspace filter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from strawberry import relay

from schema.context import actor_of


def scoped_to_workspaces(lookup: str) -> Callable[..., QuerySet[Any]]:
    def get_queryset(cls: type, queryset: QuerySet[Any], info: Any, **kwargs: Any) -> QuerySet[Any]:
        return queryset.filter(**{f"{lookup}__in": actor_of(info).workspace_ids()})

    return classmethod(get_queryset)  # type: ignore[return-value]


class DepotNode(relay.Node):
    """The Relay Node of every Depot type: its id is the primary key.

    Saying so here matters for speed: without a NodeID annotation, strawberry works this out by
    evaluating every annotation of the type, again for each id it resolves (about 1.5 ms per id
    on Asset, two thirds of a dashboard request before this).
    """

    @classmethod
    def resolve_id_attr(cls) -> str:
        return "pk"
