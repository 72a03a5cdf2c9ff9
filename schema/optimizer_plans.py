"""The optimizer's plan for a root field, made once per document, caller and variables.

For every field that returns a QuerySet, strawberry-django's optimizer walks the selection: it
matches each selected field to the type's fields, asks each related type's `get_queryset` for
its prefetch, and collects `only()`, `select_related()` and `Prefetch` objects in an
`OptimizerStore`, which it then applies to the QuerySet. The walk was about 10% of a
single-asset request's CPU (bench/http/PROFILE.md, seventh session) and gives the same store
every time the same document is run by the same caller with the same variables under the
field, so `DepotOptimizer` keeps it, keyed on:

- the field's node in the parsed document (strawberry's parser cache hands out the same
  document for the same text) and the parent and return types;
- the values of the variables used under the field, and of the field's own arguments unless it
  returns one object (an object field's own arguments pick the row; the resolver applies them);
- the caller: user, token and permission per workspace, since the stores hold the querysets
  that the types' `get_queryset` filtered for that caller;
- the operation type (the optimizer does not use `only()` in mutations).

So a type's `get_queryset` may depend on the caller and the field's arguments only, not on the
clock or the request (docs/conventions.md). Each request applies a private copy of the kept
store, as the optimizer would apply a fresh one: applying and running a plan's Prefetch
querysets changes them in place, so requests in flight at once must not share them. A QuerySet
of a model with inheritance, one already optimized or evaluated, or an explicit starting store
take the optimizer's own path. tests/schema/test_optimizer_plans.py runs documents with and
without kept plans.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import OrderedDict
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.db.models.manager import BaseManager
from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLResolveInfo,
    OperationType,
    VariableNode,
    get_named_type,
    get_nullable_type,
)
from strawberry import Info
from strawberry.types.nodes import get_variable_values
from strawberry_django import optimizer
from strawberry_django.optimizer import (
    DjangoOptimizerExtension,
    OptimizerConfig,
    OptimizerStore,
    _get_gql_definition,
    is_optimized,
)
from strawberry_django.queryset import get_queryset_config
from strawberry_django.utils.inspect import get_possible_concrete_types, is_inheritance_qs

MAX_PLANS = 2048

_plans: OrderedDict[tuple[Any, ...], tuple[FieldNode, OptimizerStore]] = OrderedDict()
_plans_lock = threading.Lock()
# id(field node) -> (the node, the names of the variables its plan depends on)
_variables_of: dict[int, tuple[FieldNode, tuple[str, ...]]] = {}


class DepotOptimizer(DjangoOptimizerExtension):
    """strawberry-django's optimizer, keeping each root field's plan (see the module)."""

    def optimize(
        self,
        qs: QuerySet[Any] | BaseManager[Any],
        info: GraphQLResolveInfo | Info,
        *,
        store: OptimizerStore | None = None,
    ) -> QuerySet[Any]:
        if not self.enabled.get():
            return qs  # type: ignore[return-value]
        if isinstance(qs, BaseManager):
            qs = qs.all()
        raw = info._raw_info if isinstance(info, Info) else info
        if (
            store is not None
            or not isinstance(qs, QuerySet)
            or is_optimized(qs)
            or qs._result_cache is not None
            or is_inheritance_qs(qs)
        ):
            return super().optimize(qs, info, store=store)
        key = _plan_key(raw)
        if key is None:
            return super().optimize(qs, info)
        config = OptimizerConfig(
            enable_only=self.enable_only and raw.operation.operation == OperationType.QUERY,
            enable_select_related=self.enable_select_related,
            enable_prefetch_related=self.enable_prefetch_related,
            enable_annotate=self.enable_annotate_optimization,
            prefetch_custom_queryset=self.prefetch_custom_queryset,
        )
        node = raw.field_nodes[0]
        kept = _plans.get(key)
        if kept is not None and kept[0] is node:
            plan = kept[1]
        else:
            plan = _plan(qs, raw, config)
            if plan is None:
                return super().optimize(qs, info)
            with _plans_lock:
                _plans[key] = (node, plan)
                if len(_plans) > MAX_PLANS:
                    _plans.popitem(last=False)
        if plan:
            qs = _private_copy(plan).apply(qs, info=raw, config=config)
            get_queryset_config(qs).optimized = True
        return qs


def _private_copy(plan: OptimizerStore) -> OptimizerStore:
    """A copy of a kept plan for one request. Applying a plan changes its Prefetch querysets
    in place (the optimizer adds the foreign key to their `only()`), and Django hints and runs
    them: requests in flight at once must not share them (under load, a shared one lost
    renditions)."""
    return OptimizerStore(
        only=list(plan.only),
        select_related=list(plan.select_related),
        prefetch_related=[_private_prefetch(p) for p in plan.prefetch_related],
        annotate=dict(plan.annotate),
    )


def _private_prefetch(prefetch: Any) -> Any:
    if not isinstance(prefetch, Prefetch) or prefetch.queryset is None:
        return prefetch  # a lookup string, or a callable made anew per request
    queryset = prefetch.queryset._chain()
    queryset._prefetch_related_lookups = tuple(
        _private_prefetch(nested) for nested in prefetch.queryset._prefetch_related_lookups
    )
    copied = copy.copy(prefetch)
    copied.queryset = queryset
    return copied


def forget_plans() -> None:
    with _plans_lock:
        _plans.clear()
        _variables_of.clear()


def _plan(qs: QuerySet[Any], info: GraphQLResolveInfo, config: OptimizerConfig) -> Any:
    """The store strawberry-django's `optimize` would build and apply, or None where it would
    not optimize at all."""
    schema = info.schema._strawberry_schema  # type: ignore[attr-defined]
    strawberry_type = schema.get_type_by_name(get_named_type(info.return_type).name)
    if strawberry_type is None:
        return None
    store = OptimizerStore()
    for definition in get_possible_concrete_types(qs.model, schema, strawberry_type):
        # Through the module: schema/optimizer_aliases.py wraps it.
        hints = optimizer._get_model_hints(
            qs.model,
            schema,
            definition,
            parent_type=_get_gql_definition(schema, definition),
            info=info,
            config=config,
        )
        if hints is not None:
            store |= hints
    return store


def _plan_key(info: GraphQLResolveInfo) -> tuple[Any, ...] | None:
    actor = getattr(info.context, "actor", None)
    if actor is None or len(info.field_nodes) != 1:
        return None
    node = info.field_nodes[0]
    names = _variable_names(info, node)
    values = get_variable_values(info)
    try:
        variables = json.dumps([values.get(name) for name in names], default=str)
    except (TypeError, ValueError):
        return None
    user = actor.user.pk if actor.user is not None else None
    token = actor.token.pk if actor.token is not None else None
    return (
        id(node),
        info.parent_type.name,
        str(info.return_type),
        info.operation.operation,
        variables,
        user,
        token,
        tuple(sorted(actor.permissions.items())),
    )


def _variable_names(info: GraphQLResolveInfo, node: FieldNode) -> tuple[str, ...]:
    known = _variables_of.get(id(node))
    if known is not None and known[0] is node:
        return known[1]
    names: set[str] = set()
    returns = get_nullable_type(info.return_type)
    # One object, not a connection (whose arguments page it): the resolver applies them.
    returns_one_object = isinstance(returns, GraphQLObjectType) and "edges" not in returns.fields
    if not returns_one_object:
        _collect(node.arguments, info, names, set())
    if node.selection_set is not None:
        _collect(node.selection_set, info, names, set())
    found = tuple(sorted(names))
    if len(_variables_of) > 4 * MAX_PLANS:
        _variables_of.clear()
    _variables_of[id(node)] = (node, found)
    return found


def _collect(value: Any, info: GraphQLResolveInfo, names: set[str], seen: set[str]) -> None:
    """The variables anywhere under an AST value, through fragment spreads."""
    if isinstance(value, VariableNode):
        names.add(value.name.value)
        return
    if isinstance(value, FragmentSpreadNode):
        name = value.name.value
        fragment = info.fragments.get(name)
        if fragment is not None and name not in seen:
            seen.add(name)
            _collect(fragment.selection_set, info, names, seen)
    if isinstance(value, (list, tuple)):
        for item in value:
            _collect(item, info, names, seen)
        return
    for attribute in getattr(value, "keys", ()):
        if attribute != "loc":
            _collect(getattr(value, attribute, None), info, names, seen)
