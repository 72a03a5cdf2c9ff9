"""Tenant scoping for every model type.

strawberry-django calls a type's `get_queryset` wherever it loads that type: top-level fields,
nested relations (through the optimizer's prefetches), `node` and `nodes`. Defining it on every
type means no entry point can forget the workspace filter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db.models import QuerySet
from django.db.models.expressions import Col
from django.db.models.lookups import In
from django.db.models.sql.where import AND
from strawberry import relay

from schema.context import actor_of

F = TypeVar("F", bound=Callable[..., Any])


def in_memory(resolver: F) -> F:
    """Marks a sync resolver that never touches the database (it reads loaded columns, builds
    an enum, signs a link), so it runs inline in either execution mode.

    strawberry-django runs a sync resolver through `sync_to_async` in async execution (a thread
    hop per object) unless it carries `is_async_safe`, its own marker for its internal resolvers
    (`StrawberryDjangoFieldBase.safe_resolver`). `async def` would avoid the hop as well, but
    cannot run in synchronous execution, which plain queries use over HTTP (schema/http.py).
    tests/schema/test_field_fast_path.py checks that the marker still has its effect.
    """
    resolver.is_async_safe = True  # type: ignore[attr-defined]
    return resolver


def scoped_to_workspaces(lookup: str, *, owner: str | None = None) -> Callable[..., QuerySet[Any]]:
    """`get_queryset` that keeps the rows of the caller's workspaces (`lookup` leads to the
    workspace id).

    `owner` names a foreign key to the row that owns these (a rendition's `asset`). Loaded as
    that owner's plain reverse relation (`Asset.renditions`, prefetched or not), the rows need
    no filter of their own: they are the rows of an owner the caller was already allowed to
    see, and a filter through the owner would only join its table again. Everywhere else
    (`node`, another field) they are filtered.
    """
    owner_relation: list[tuple[type, str]] = []  # (owner model, accessor), found on first use

    def get_queryset(cls: type, queryset: QuerySet[Any], info: Any, **kwargs: Any) -> QuerySet[Any]:
        if owner is not None and _loaded_through(info, queryset.model, owner, owner_relation):
            return queryset
        workspace_ids = actor_of(info).workspace_ids()
        if _filtered_by(queryset, lookup, workspace_ids):
            return queryset
        return queryset.filter(**{f"{lookup}__in": workspace_ids})

    return classmethod(get_queryset)  # type: ignore[return-value]


def _filtered_by(queryset: QuerySet[Any], lookup: str, workspace_ids: list[int]) -> bool:
    """Whether the queryset already keeps only these workspaces' rows by this very filter, at
    the top of its WHERE (ANDed, not negated): a root field's queryset from a domain selector
    (`asset_list_for(actor=)`...) applies the same rule, and a second copy of the filter cost
    about 2% of a single-asset request (building the lookup, compiling the IN list)."""
    where = queryset.query.where
    if where.connector != AND or where.negated:
        return False
    wanted = set(workspace_ids)
    for child in where.children:
        if (
            isinstance(child, In)
            and isinstance(child.lhs, Col)
            and child.lhs.alias == queryset.query.base_table
            and (
                child.lhs.target.primary_key
                if lookup == "pk"
                else child.lhs.target.attname == lookup
            )
            and isinstance(child.rhs, (list, tuple, set))
            and set(child.rhs) == wanted
        ):
            return True
    return False


def _loaded_through(info: Any, model: type, owner: str, found: list[tuple[type, str]]) -> bool:
    field = getattr(info, "_field", None)
    if field is None or getattr(field, "base_resolver", True) is not None:
        return False
    if not found:
        foreign_key = model._meta.get_field(owner)  # type: ignore[attr-defined]
        found.append((foreign_key.related_model, foreign_key.remote_field.get_accessor_name()))
    owner_model, accessor = found[0]
    origin = getattr(field, "origin_django_type", None)
    return (
        origin is not None
        and origin.model is owner_model
        and getattr(field, "django_name", None) == accessor
    )


class DepotNode(relay.Node):
    """The Relay Node of every Depot type: its id is the primary key.

    Saying so here matters for speed: without a NodeID annotation, strawberry works this out by
    evaluating every annotation of the type, again for each id it resolves (about 1.5 ms per id
    on Asset, two thirds of a dashboard request before this).
    """

    @classmethod
    def resolve_id_attr(cls) -> str:
        return "pk"
