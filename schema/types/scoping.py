"""Tenant scoping for every model type.

strawberry-django calls a type's `get_queryset` wherever it loads that type: top-level fields,
nested relations (through the optimizer's prefetches), `node` and `nodes`. Defining it on every
type means no entry point can forget the workspace filter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet

from schema.context import actor_of


def scoped_to_workspaces(lookup: str) -> Callable[..., QuerySet[Any]]:
    def get_queryset(cls: type, queryset: QuerySet[Any], info: Any, **kwargs: Any) -> QuerySet[Any]:
        return queryset.filter(**{f"{lookup}__in": actor_of(info).workspace_ids()})

    return classmethod(get_queryset)  # type: ignore[return-value]
