"""Execution with compiled plans for plain selections.

graphql-core executes every field the same way: it looks the field up, builds a `ResolveInfo`,
wraps the resolver in the middleware (strawberry-django's optimizer), calls it, checks whether
the result is awaitable, and completes the value through `complete_value`. For the dashboard
query that is about 3,100 fields a request, of which about 2,600 are a loaded column or a
Relay id: the machinery costs far more than the value (bench/http/PROFILE.md, session 3).

`DepotExecutionContext` compiles, once per selection set and request, a plan that reads those
fields directly:

- a `DepotField` on a plain column (`schema/types/fields.py`): the value in the instance's
  `__dict__`, coerced by the field's scalar or enum type, exactly as `complete_leaf_value` does;
- the `id` of a `DepotNode`: the global id of the type's name and the primary key, as
  strawberry's `Node._id` and strawberry-django's `resolve_model_id` compute it;
- `__typename`: the object type's name.

A value read directly that is an object, or a list of them, is completed inline when every
field under it can be read directly too (`_completer`): the plan's readers build its dict, with
the type check graphql-core makes, and graphql-core's per-object machinery (`complete_value`,
`complete_object_value`, field collection, `execute_fields`) is skipped. For the dashboard query
that is the edges, assets and renditions under each collection: about 1,000 of its 1,060
objects. Anything under it that cannot be read directly gives the whole value back to
graphql-core.

A nested connection whose page the optimizer prefetched (`model_connection`) is read directly
too: the connection strawberry-django would build from the prefetched rows.

Every other field (relations and connections not prefetched, resolvers, arguments) goes through
graphql-core as before, in the same order, so the response keeps its key order. Whenever a
direct read cannot answer exactly as graphql-core would (a deferred column, a null in a non-null
field, a value the scalar refuses), that field is executed the general way instead, which loads
it or reports the error with its path and null propagation. Skipping the optimizer's middleware
for these fields is sound: it only acts on results that are QuerySets or managers, which a
column never is. A plan is only used when the optimizer is the only middleware; any other
resolve hook turns it off.

tests/schema/test_compiled_execution.py runs the same documents with and without plans and
compares the responses, errors included.
"""

from __future__ import annotations

from collections.abc import Callable
from inspect import isawaitable
from typing import Any

from django.db.models import QuerySet
from django.db.models.manager import BaseManager
from graphql import (
    ExecutionResult,
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfoHelpers,
    GraphQLScalarType,
    OperationType,
    Undefined,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import to_nodes
from graphql.pyutils import Path, gather_with_cancel
from strawberry import relay
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.cast import TYPE_CAST_ATTRIBUTE
from strawberry_django.optimizer import DjangoOptimizerExtension, is_optimized_by_prefetching
from strawberry_django.relay.utils import resolve_model_id

from schema.optimizer_aliases import aliased_page_attribute
from schema.types.fields import DepotField, PrefetchedConnection
from schema.types.scoping import DepotNode

_BACKREF = GraphQLCoreConverter.DEFINITION_BACKREF
_NODE_ID_RESOLVER = relay.Node.__dict__["_id"].__func__
_NODE_TYPENAME = relay.Node.__dict__["resolve_typename"].__func__

# A direct read answers with the completed value, or with this marker when the field has to be
# executed the general way.
GENERAL = object()

Reader = Callable[[Any], Any]
# (response name, reader or None for a general field, the field's details, and the field to
# complete the value as when the reader returns an object or a list of them, else None)
Step = tuple[str, Reader | None, FieldDetailsList, GraphQLField | None]
# Completes a value read directly (an object, a list of them, or null) into its response
# value, or answers GENERAL.
Completer = Callable[[Any], Any]


def _execution_ended(*args: Any) -> Any:
    raise RuntimeError("this GraphQL execution has ended")


# What an ended execution's resolve infos get instead of graphql-core's helpers (see _let_go).
_NO_ASYNC_HELPERS = GraphQLResolveInfoHelpers(gather=_execution_ended, track=_execution_ended)


class DepotExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, with direct reads for plain fields (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Plans live as long as the request: keyed on the grouped field set's identity, which
        # graphql-core memoizes per selection for the whole execution (`collect_subfields`).
        self._plans: dict[int, tuple[GroupedFieldSet, GraphQLObjectType, list[Step] | None]] = {}
        self._completers: dict[tuple[Any, int], tuple[FieldDetailsList, Completer | None]] = {}
        middlewares = self.middleware_manager.middlewares if self.middleware_manager else ()
        self._plans_allowed = all(isinstance(m, DjangoOptimizerExtension) for m in middlewares)

    def build_response(self, data: dict[str, Any] | None) -> Any:
        response = super().build_response(data)
        # The end of a query's or a mutation's execution (no incremental delivery left). Not a
        # subscription's: its events are run by shallow copies that share the plans.
        if (
            isinstance(response, ExecutionResult)
            and self.operation.operation != OperationType.SUBSCRIPTION
        ):
            self._let_go()
        return response

    def _let_go(self) -> None:
        """Drop what refers back to this context, once its response is built: graphql-core's
        async helpers (its own bound methods) and the plans' readers and completers (closures
        over it). Kept, they made the context a cycle, and with it everything the request
        reached (the request, its caller, its rows): garbage that reference counting could not
        free, left to the cycle collector's young collections (bench/realtime, a traced jobs
        phase: 47 of them over 721 requests, up to 11 ms each, each freeing ~15,000 objects)."""
        self._plans.clear()
        self._completers.clear()
        self.async_helpers = _NO_ASYNC_HELPERS

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        steps = self._plan(parent_type, grouped_field_set)
        if steps is None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        results: dict[str, Any] = {}
        awaitable_fields: list[str] = []
        is_awaitable = self.is_awaitable
        try:
            for response_name, reader, field_details_list, field_def in steps:
                value = GENERAL if reader is None else reader(source_value)
                if value is not GENERAL and field_def is None:
                    results[response_name] = value  # a leaf, complete already
                    continue
                if value is GENERAL or field_def is None:
                    result = self.execute_field(
                        parent_type,
                        source_value,
                        field_details_list,
                        Path(path, response_name, parent_type.name),
                        position_context,
                    )
                    if result is Undefined:
                        continue
                else:
                    result = GENERAL
                    if position_context is None:
                        complete = self._completer(field_def.type, field_details_list)
                        if complete is not None:
                            result = complete(value)
                    if result is GENERAL:
                        # The path only when graphql-core needs one: an inlined value has no
                        # errors to place.
                        result = self._complete(
                            parent_type,
                            field_def,
                            field_details_list,
                            Path(path, response_name, parent_type.name),
                            value,
                            position_context,
                        )
                results[response_name] = result
                if is_awaitable(result):
                    awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[name] for name in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        return self._gather(results, awaitable_fields)

    def _completer(
        self, return_type: Any, field_details_list: FieldDetailsList
    ) -> Completer | None:
        """A function that completes a value of this type for this selection without
        graphql-core: objects whose every field has a reader, lists of them, nulls where the
        type allows them. It answers GENERAL for a value it cannot complete exactly, and the
        caller then completes the whole value the general way (a read has no side effect, so
        reading again is safe). None when no value of it can be completed so (a field under it
        without a reader, an interface, @stream, a deferred fragment). Built once per selection
        and request, so completing a value is straight calls, with no type dispatch."""
        key = (return_type, id(field_details_list))
        cached = self._completers.get(key)
        if cached is not None and cached[0] is field_details_list:
            return cached[1]
        if isinstance(return_type, GraphQLNonNull):
            inner = self._nullable_completer(return_type.of_type, field_details_list)
            completer = _on_null(inner, GENERAL)
        else:
            completer = _on_null(self._nullable_completer(return_type, field_details_list), None)
        # The list is kept alive with the entry, so its id cannot be reused meanwhile.
        self._completers[key] = (field_details_list, completer)
        return completer

    def _nullable_completer(
        self, return_type: Any, field_details_list: FieldDetailsList
    ) -> Completer | None:
        if isinstance(return_type, GraphQLList):
            # Only real lists, as in list_value, and not streamed.
            if not _not_streamed(field_details_list):
                return None
            item = self._completer(return_type.of_type, field_details_list)
            return None if item is None else _list_of(item)
        if not isinstance(return_type, GraphQLObjectType):
            return None  # interfaces and unions are resolved by graphql-core
        # graphql-core's own memoized collection, so the grouped field set (and the plan
        # cached on it) is the one execute_fields would be given.
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(
            return_type, field_details_list
        )
        steps = self._plan(return_type, grouped_field_set)
        is_type_of = return_type.is_type_of
        type_check = None if is_type_of is None else model_type_check(is_type_of)
        if new_defer_usages or steps is None or (is_type_of is not None and type_check is None):
            return None
        compiled: list[tuple[str, Reader, Completer | None]] = []
        for response_name, reader, sub_details, field_def in steps:
            if reader is None:
                return None
            sub = None
            if field_def is not None:
                sub = self._completer(field_def.type, sub_details)
                if sub is None:
                    return None
            compiled.append((response_name, reader, sub))
        return _object_of(type_check, compiled)

    def _complete(
        self,
        parent_type: GraphQLObjectType,
        field_def: GraphQLField,
        field_details_list: FieldDetailsList,
        path: Path,
        value: Any,
        position_context: Any,
    ) -> Any:
        """The second half of graphql-core's execute_field, for a value read directly: complete
        it (objects and lists of them) and report errors the way execute_field does."""
        return_type = field_def.type
        info = self.build_resolve_info(field_def, to_nodes(field_details_list), parent_type, path)
        try:
            completed = self.complete_value(
                return_type, field_details_list, info, path, value, position_context
            )
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
        if not self.is_awaitable(completed):
            return completed

        async def await_completed() -> Any:
            try:
                return await completed
            except Exception as raw_error:
                self.handle_field_error(raw_error, return_type, field_details_list, path)
                return None

        return await_completed()

    async def _gather(self, results: dict[str, Any], awaitable_fields: list[str]) -> Any:
        # What graphql-core's execute_fields does with awaitable fields, kept in step with it.
        if len(awaitable_fields) == 1:
            name = awaitable_fields[0]
            results[name] = await results[name]
        else:
            awaited = await gather_with_cancel(*(results[name] for name in awaitable_fields))
            results.update(zip(awaitable_fields, awaited, strict=True))
        return results

    def _plan(
        self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> list[Step] | None:
        """The steps for this selection, or None when no field can be read directly."""
        if not self._plans_allowed:
            return None
        cached = self._plans.get(id(grouped_field_set))
        if cached is not None and cached[0] is grouped_field_set and cached[1] is parent_type:
            return cached[2]
        steps: list[Step] = []
        direct = 0
        for response_name, field_details_list in grouped_field_set.items():
            reader, completes = direct_reader(parent_type, field_details_list)
            direct += reader is not None
            steps.append((response_name, reader, field_details_list, completes))
        plan = steps if direct else None
        # The set itself is kept alive with its plan, so its id cannot be reused meanwhile.
        self._plans[id(grouped_field_set)] = (grouped_field_set, parent_type, plan)
        return plan


def direct_reader(
    parent_type: GraphQLObjectType, field_details_list: FieldDetailsList
) -> tuple[Reader | None, GraphQLField | None]:
    """A function that reads this field off a source object, or None if it cannot be read
    directly, and the field whose type completes what it reads, when that is not yet a leaf
    value. The reader returns GENERAL when this particular value needs the general way."""
    node = field_details_list[0].node
    name = node.name.value
    if name == "__typename":
        type_name = parent_type.name
        return (lambda source: type_name), None
    field_def = parent_type.fields.get(name)
    if field_def is None:
        return None, None
    field = field_def.extensions.get(_BACKREF)
    if isinstance(field, DepotField) and field.prefetched_connection is not None:
        key = node.alias.value if node.alias else name
        return prefetched_connection_reader(field.prefetched_connection, key), field_def
    if field_def.args or node.arguments:
        return None, None
    complete, non_null = leaf_coercion(field_def.type)
    if complete is not None:
        if isinstance(field, DepotField) and field.is_basic_field:
            return column_reader(field.column_attname, complete, non_null), None
        if name == "id" and non_null and _is_node_id(parent_type, field):
            return node_id_reader(parent_type, complete), None
        if _is_basic(field_def, field):
            return leaf_reader(attribute_reader(field_def.resolve), complete, non_null), None
        return None, None
    if isinstance(field, DepotField) and field.prefetch_cache_name:
        return prefetched_reader(field.prefetch_cache_name), field_def
    if _is_basic(field_def, field):
        return attribute_reader(field_def.resolve), field_def
    return None, None


def _on_null(inner: Completer | None, answer: Any) -> Completer | None:
    """`inner` for values, `answer` for null: None in a nullable field, GENERAL in a non-null
    one (graphql-core reports the error and propagates the null)."""
    if inner is None:
        return None

    def complete(value: Any) -> Any:
        return answer if value is None else inner(value)

    return complete


def _list_of(item: Completer) -> Completer:
    def complete(value: Any) -> Any:
        if type(value) is not list:
            return GENERAL
        completed: list[Any] = []
        for entry in value:
            entry = item(entry)
            if entry is GENERAL:
                return GENERAL
            completed.append(entry)
        return completed

    return complete


def _object_of(
    type_check: Callable[[Any], bool] | None, steps: list[tuple[str, Reader, Completer | None]]
) -> Completer:
    def complete(value: Any) -> Any:
        if type_check is not None and not type_check(value):
            return GENERAL  # graphql-core raises its error
        results: dict[str, Any] = {}
        for response_name, reader, sub in steps:
            sub_value = reader(value)
            if sub_value is GENERAL:
                return GENERAL
            if sub is not None:
                sub_value = sub(sub_value)
                if sub_value is GENERAL:
                    return GENERAL
            results[response_name] = sub_value
        return results

    return complete


def _not_streamed(field_details_list: FieldDetailsList) -> bool:
    """No directive on the field but @skip and @include (which field collection has applied):
    @stream changes how graphql-core completes a list. (Depot's schema has no @stream today;
    this keeps the inline path right if it ever does.)"""
    return all(
        directive.name.value in ("skip", "include")
        for details in field_details_list
        for directive in details.node.directives or ()
    )


def model_type_check(is_type_of: Callable[..., Any]) -> Callable[[Any], bool] | None:
    """graphql-core's `is_type_of` check as a one-argument function, when it is the one
    strawberry-django generates for a model type and the type inherits no check of its own;
    else None. That predicate answers from the object alone: a type cast decides, else the
    object must be an instance of the type or of its model. Asked about a thousand objects a
    request, its wrapper (the cast lookup, `super()`) cost more than the answer."""
    func = getattr(is_type_of, "__func__", None)
    owner = getattr(is_type_of, "__self__", None)
    if (
        func is None
        or getattr(func, "__qualname__", "") != "_process_type.<locals>.is_type_of"
        or getattr(func, "__module__", "") != "strawberry_django.type"
        or not isinstance(owner, type)
        or getattr(super(owner, owner), "is_type_of", None) is not None
    ):
        return None
    captured = dict(zip(func.__code__.co_freevars, func.__closure__ or (), strict=True))
    try:
        cls = captured["cls"].cell_contents
        classes = (cls, captured["model"].cell_contents)
    except (KeyError, ValueError):  # an empty cell
        return None

    def check(value: Any) -> bool:
        type_cast = getattr(value, TYPE_CAST_ATTRIBUTE, None)
        if type_cast is not None:
            return type_cast is cls
        return isinstance(value, classes)

    return check


def _is_basic(field_def: GraphQLField, field: Any) -> bool:
    """A strawberry field without resolver, arguments or extensions: strawberry resolves it with
    `_get_basic_result`, a plain read of the attribute."""
    resolve = field_def.resolve
    return bool(
        getattr(resolve, "__name__", "") == "_get_basic_result"
        and getattr(resolve, "_is_default", False)
        and getattr(field, "is_basic_field", False)
    )


def leaf_coercion(return_type: Any) -> tuple[Callable[[Any], Any] | None, bool]:
    """How a value of this type is completed, if it is a scalar, an enum or a flat list of
    them (`[String!]!`), and whether the field is non-null. A value the coercion cannot complete
    exactly as `complete_value` would makes it return GENERAL."""
    non_null = isinstance(return_type, GraphQLNonNull)
    nullable_type = return_type.of_type if non_null else return_type
    if isinstance(nullable_type, GraphQLScalarType | GraphQLEnumType):
        return leaf_value(nullable_type.coerce_output_value), non_null
    if not isinstance(nullable_type, GraphQLList):
        return None, non_null
    item_type = nullable_type.of_type
    item_non_null = isinstance(item_type, GraphQLNonNull)
    item_type = item_type.of_type if item_non_null else item_type
    if not isinstance(item_type, GraphQLScalarType | GraphQLEnumType):
        return None, non_null
    return list_value(leaf_value(item_type.coerce_output_value), item_non_null), non_null


def leaf_value(coerce: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def complete(value: Any) -> Any:
        try:
            coerced = coerce(value)
        except Exception:
            return GENERAL  # graphql-core reports the error, with its path
        return GENERAL if coerced is None or coerced is Undefined else coerced

    return complete


def list_value(complete_item: Callable[[Any], Any], item_non_null: bool) -> Callable[[Any], Any]:
    def complete(value: Any) -> Any:
        # Only real lists: graphql-core accepts any iterable, and a generator read here could
        # not be read again by the general way.
        if type(value) is not list:
            return GENERAL
        completed: list[Any] = []
        for item in value:
            if item is None:
                if item_non_null:
                    return GENERAL
                completed.append(None)
                continue
            item = complete_item(item)
            if item is GENERAL:
                return GENERAL
            completed.append(item)
        return completed

    return complete


def leaf_reader(read_value: Reader, complete: Callable[[Any], Any], non_null: bool) -> Reader:
    def read(source: Any) -> Any:
        value = read_value(source)
        if value is GENERAL:
            return GENERAL
        if value is None:
            return GENERAL if non_null else None
        return complete(value)

    return read


def column_reader(attname: str, complete: Callable[[Any], Any], non_null: bool) -> Reader:
    # leaf_reader with the column read inlined: this runs for most values of a response, and
    # one call fewer per value is measurable there.
    def read(source: Any) -> Any:
        try:
            value = source.__dict__[attname]
        except (KeyError, AttributeError):
            return GENERAL  # deferred, or not a model instance
        if value is None:
            return GENERAL if non_null else None
        return complete(value)

    return read


def _is_node_id(parent_type: GraphQLObjectType, field: Any) -> bool:
    """Whether `id` is strawberry's Node id on a DepotNode with the stock id resolution."""
    definition = parent_type.extensions.get(_BACKREF)
    origin = getattr(definition, "origin", None)
    resolver = getattr(getattr(field, "base_resolver", None), "wrapped_func", None)
    return (
        isinstance(origin, type)
        and issubclass(origin, DepotNode)
        and getattr(resolver, "__func__", None) is _NODE_ID_RESOLVER
        and getattr(origin.resolve_typename, "__func__", None) is _NODE_TYPENAME
        and getattr(origin.resolve_id, "__func__", None) is resolve_model_id
        and origin.resolve_id_attr() == "pk"
    )


def node_id_reader(parent_type: GraphQLObjectType, complete: Callable[[Any], Any]) -> Reader:
    type_name = parent_type.name

    def read(source: Any) -> Any:
        try:
            pk_attname = source._meta.pk.attname
            node_id = source.__dict__[pk_attname]
        except (KeyError, AttributeError):
            return GENERAL
        if node_id is None:
            return GENERAL
        return complete(relay.GlobalID(type_name=type_name, node_id=str(node_id)))

    return read


def _optimizer_prefetched(source: Any, cache_name: str) -> Any:
    """The QuerySet holding the rows the optimizer prefetched for this relation of `source`
    (so the type's `get_queryset` was applied), or None."""
    try:
        queryset = source.__dict__["_prefetched_objects_cache"][cache_name]
    except (KeyError, AttributeError):
        return None
    if queryset._result_cache is None or not is_optimized_by_prefetching(queryset):
        return None
    return queryset


def prefetched_reader(cache_name: str) -> Reader:
    """A to-many relation the optimizer prefetched: what strawberry-django answers for it (the
    prefetched rows, its `get_queryset` being done at prefetch time), without building the
    related manager and its filtered QuerySet for every source object."""

    def read(source: Any) -> Any:
        queryset = _optimizer_prefetched(source, cache_name)
        return GENERAL if queryset is None else queryset._result_cache

    return read


def prefetched_connection_reader(connection: PrefetchedConnection, response_key: str) -> Reader:
    """A plain connection whose page the optimizer prefetched: the connection strawberry-django
    answers from it (`DjangoListConnection.resolve_optimized_connection_by_prefetch`: an edge
    per row, with the row's number as its cursor), without the field's wrapper, the conversion
    of its arguments (the optimizer applied them to the prefetch), the related manager, or the
    search for the edge type on every call. Rows without the optimizer's pagination
    annotations go the general way, where strawberry-django falls back to querying. An alias
    whose arguments differ from its siblings' reads the page prefetched for it alone
    (schema/optimizer_aliases.py); its `totalCount` comes from the rows, as for the relation's
    own prefetched page (0 for an empty page)."""
    cache_name = connection.cache_name
    connection_type, resolve_edge = connection.connection_type, connection.edge_type.resolve_edge
    page_attribute = aliased_page_attribute(response_key)

    def read(source: Any) -> Any:
        nodes: Any = source.__dict__.get(page_attribute)
        if nodes is not None:
            rows = nodes
        else:
            nodes = _optimizer_prefetched(source, cache_name)
            if nodes is None:
                return GENERAL
            rows = nodes._result_cache
        try:
            edges = [resolve_edge(row, cursor=row._strawberry_row_number - 1) for row in rows]
            has_previous_page = rows[0]._strawberry_row_number > 1 if rows else False
            has_next_page = (
                rows[-1]._strawberry_row_number < rows[-1]._strawberry_total_count
                if rows
                else False
            )
        except AttributeError:
            return GENERAL
        answer = connection_type(
            edges=edges,
            page_info=relay.PageInfo(
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
                has_previous_page=has_previous_page,
                has_next_page=has_next_page,
            ),
        )
        answer.nodes = nodes  # as resolve_connection sets it: totalCount reads it
        return answer

    return read


def attribute_reader(resolve: Callable[..., Any]) -> Reader:
    """A basic strawberry field of object type (a connection's `edges`, an edge's `node`):
    strawberry's own basic resolver, without the middleware. A QuerySet or manager goes the
    general way, since the optimizer's middleware acts on those, and so does an awaitable."""

    def read(source: Any) -> Any:
        try:
            value = resolve(source)
        except Exception:
            return GENERAL  # the general way runs it again and reports the error
        if isinstance(value, QuerySet | BaseManager) or isawaitable(value):
            return GENERAL  # graphql-core awaits it first
        return value

    return read
