"""Prefetches for the aliases of a relation, with the same arguments or not.

strawberry-django's optimizer means to prefetch a relation once for all of its aliases when
their arguments are the same (`_get_model_hints`), but compares the arguments' AST nodes with
`==`, and graphql-core's node equality includes each node's source location (`Node.keys` is
`("loc",)`): two aliases never compare equal, so none of them was prefetched, and
`a: assets(first: 2) b: assets(first: 2)` under 20 collections ran 40 queries. Here the
arguments are compared as printed GraphQL.

Aliases with different arguments (`recent: assets(first: 3) big: assets(ordering: ...)`) it
leaves alone, since Django keeps one prefetch per relation and instance: each then ran a query
per parent. For a plain nested connection (`DepotField.prefetched_connection`) each such alias
now gets a prefetch of its own, the one the optimizer would have made for it alone, kept in an
attribute named after the alias (`aliased_page_attribute`) rather than in the relation's cache.
schema/execution.py's compiled plans read that page; strawberry-django's own resolver ignores
it and queries as before, so an answer never depends on which of the two ran.
tests/schema/test_compiled_execution.py counts the statements.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from django.db.models import Prefetch
from graphql import FieldNode, print_ast
from strawberry import relay
from strawberry_django import optimizer
from strawberry_django.pagination import OffsetPaginated
from strawberry_django.utils.typing import get_django_definition

from schema.types.fields import DepotField


def field_arguments(node: FieldNode) -> tuple[tuple[str, str], ...]:
    """The arguments of a field as (name, printed value) pairs, without source locations."""
    return tuple(
        sorted(
            (argument.name.value, print_ast(argument.value)) for argument in node.arguments or ()
        )
    )


def aliased_page_attribute(response_key: str) -> str:
    """Where the page prefetched for an alias (its response key) of a connection is kept."""
    return f"_depot_page_{response_key}"


def install() -> None:
    # Only where the optimizer still has the comparison this replaces and the walk this wraps.
    if hasattr(optimizer, "_get_field_arguments"):
        optimizer._get_field_arguments = field_arguments
    hints = optimizer._get_model_hints
    if not getattr(hints, "prefetches_aliased_pages", False):
        optimizer._get_model_hints = _with_aliased_pages(hints)


def _with_aliased_pages(get_model_hints: Callable[..., Any]) -> Callable[..., Any]:
    """The optimizer's walk over a type's selections, plus a prefetch per alias of a plain
    connection whose aliases differ in their arguments (the walk skips those)."""

    @functools.wraps(get_model_hints)
    def walk(model: Any, schema: Any, object_definition: Any, **options: Any) -> Any:
        store = get_model_hints(model, schema, object_definition, **options)
        if store is None or issubclass(
            object_definition.origin, relay.Connection | OffsetPaginated
        ):
            return store
        definition = get_django_definition(object_definition.origin)
        if definition is None or not issubclass(model, definition.model):
            return store  # a subclass's walk (model inheritance): its own call did the aliases
        parent_type, info = options["parent_type"], options["info"]
        for key, nodes in _aliases_with_different_arguments(info, parent_type):
            data = optimizer._get_field_data(
                nodes, object_definition, schema, parent_type=parent_type, info=info
            )
            if data is None:
                continue
            field, field_type, selection, field_info = data
            if not isinstance(field, DepotField) or field.prefetched_connection is None:
                continue
            hints = optimizer._get_hints_from_django_field(
                field,
                field_type,
                selection,
                model,
                schema,
                config=options.get("config") or optimizer.OptimizerConfig(),
                parent_type=parent_type,
                field_info=field_info,
                prefix=options.get("prefix", ""),
                cache=options.get("cache") or {},
                level=options.get("level", 0),
            )
            for prefetch in hints.prefetch_related if hints is not None else ():
                if isinstance(prefetch, Prefetch):
                    store.prefetch_related.append(_kept_as(prefetch, key))
        return store

    walk.prefetches_aliased_pages = True  # type: ignore[attr-defined]
    return walk


def _aliases_with_different_arguments(
    info: Any, parent_type: Any
) -> Iterator[tuple[str, list[FieldNode]]]:
    """(response key, its nodes) of every field selected under several response keys whose
    arguments differ: the ones the optimizer's walk leaves unprefetched."""
    by_name: defaultdict[str, list[tuple[str, list[FieldNode]]]] = defaultdict(list)
    for key, nodes in optimizer._get_selections(info, parent_type).items():
        by_name[nodes[0].name.value].append((key, nodes))
    for keys in by_name.values():
        if len({field_arguments(nodes[0]) for _, nodes in keys}) > 1:
            yield from keys


def _kept_as(prefetch: Prefetch, response_key: str) -> Prefetch:
    """The same prefetch, its rows kept in the alias's attribute."""
    aliased = Prefetch(
        prefetch.prefetch_through,
        queryset=prefetch.queryset,
        to_attr=aliased_page_attribute(response_key),
    )
    aliased._optimizer_sentinel = getattr(prefetch, "_optimizer_sentinel", None)  # type: ignore[attr-defined]
    return aliased
