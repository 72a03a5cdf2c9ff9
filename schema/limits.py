"""Limits that refuse an abusive operation before any resolver runs.

Depth, aliases and tokens use strawberry's validators. Page size and cost need the variables, so
they are checked here at the start of execution, before the first resolver: every field costs 1,
times the page sizes (`first`/`last`, or the default page size for a connection without one, or
the number of `ids` asked for) of the fields above it. Under a field of an interface or union type
(`node`, `nodes`) the selection costs what it would cost on the costliest of the types it can be.

Text with a NUL character (U+0000) is refused here too, as INVALID_INPUT: Postgres stores no
such text (nor JSON holding it), so every field that wrote or filtered by it failed as an
unexpected error, and a bulk edit with one such row failed whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from graphql import (
    BREAK,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    Undefined,
    Visitor,
    get_named_type,
    is_abstract_type,
    value_from_ast_untyped,
    visit,
)
from graphql.execution.values import get_variable_values
from strawberry.extensions import SchemaExtension
from strawberry.relay.types import PREFIX as CURSOR_PREFIX
from strawberry.relay.utils import from_base64


class LimitExceeded(GraphQLError):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, extensions={"code": code})


class QueryLimits(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            operation = _operation(document.definitions, context.operation_name)
            if operation is not None:
                fragments = {
                    d.name.value: d
                    for d in document.definitions
                    if isinstance(d, FragmentDefinitionNode)
                }
                schema = context.schema._schema
                root = schema.get_root_type(operation.operation)
                variables = get_variable_values(
                    schema, operation.variable_definitions or (), context.variables or {}
                )
                if isinstance(variables, list):
                    yield  # variables that do not fit their types: execution reports them
                    return
                if _literal_has_nul(context.query, document) or _has_nul(variables.coerced):
                    raise LimitExceeded(
                        "Text may not contain NUL characters (U+0000).", "INVALID_INPUT"
                    )
                measure = _Measure(schema, fragments, variables.coerced)
                cost = measure.selection_cost(operation.selection_set, root, 1)
                if cost > settings.DEPOT_GRAPHQL_MAX_COST:
                    raise LimitExceeded(
                        f"The query would cost {cost}; the limit is "
                        f"{settings.DEPOT_GRAPHQL_MAX_COST}: ask for smaller pages or fewer "
                        "fields.",
                        "QUERY_TOO_COSTLY",
                    )
        yield


class _NulFinder(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def enter_string_value(self, node: StringValueNode, *_: Any) -> Any:
        if "\x00" in node.value:
            self.found = True
            return BREAK
        return None


def _literal_has_nul(query: str | None, document: DocumentNode) -> bool:
    # A literal's NUL is written as itself or as an escape (\u0000, \u{0}): most documents
    # have neither, and are not walked.
    if query is not None and "\x00" not in query and "\\u" not in query:
        return False
    finder = _NulFinder()
    visit(document, finder)
    return finder.found


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(item) for item in value)
    return False


def _operation(definitions: Any, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == name), None)


class _Measure:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
    ):
        self.schema = schema
        self.fragments = fragments
        # Coerced, defaults included: the values the resolvers will see.
        self.variables = variables

    def selection_cost(
        self, selection_set: SelectionSetNode | None, parent: Any, multiplier: int
    ) -> int:
        if selection_set is None:
            return 0
        if is_abstract_type(parent):
            # Which type each object will be is known only once it is loaded: price the
            # selection on each type it can be, and take the costliest.
            return max(
                (
                    self.selection_cost(selection_set, possible, multiplier)
                    for possible in self.schema.get_possible_types(parent)
                ),
                default=0,
            )
        if not isinstance(parent, GraphQLObjectType):
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field_cost(selection, parent, multiplier)
            elif isinstance(selection, InlineFragmentNode):
                total += self.selection_cost(
                    selection.selection_set, self._type(selection, parent), multiplier
                )
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    total += self.selection_cost(
                        fragment.selection_set, self._type(fragment, parent), multiplier
                    )
        return total

    def _type(
        self, node: InlineFragmentNode | FragmentDefinitionNode, parent: GraphQLObjectType
    ) -> Any:
        """The type the fragment's fields are read on, or None where it never applies."""
        if node.type_condition is None:
            return parent
        condition = self.schema.get_type(node.type_condition.name.value)
        if condition is parent:
            return parent
        if is_abstract_type(condition) and self.schema.is_sub_type(condition, parent):
            return parent
        return None

    def field_cost(self, node: FieldNode, parent: GraphQLObjectType, multiplier: int) -> int:
        definition = parent.fields.get(node.name.value)
        if definition is None:
            return multiplier
        child_type = get_named_type(definition.type)
        page = self.page_size(node, child_type)
        own = multiplier
        return own + self.selection_cost(node.selection_set, child_type, multiplier * page)

    def page_size(self, node: FieldNode, child_type: Any) -> int:
        arguments = {arg.name.value: arg.value for arg in node.arguments or ()}
        if "ids" in arguments:
            ids = value_from_ast_untyped(arguments["ids"], self.variables)
            if isinstance(ids, list):
                return max(len(ids), 1)
        sizes = []
        for name in ("first", "last"):
            if name in arguments:
                value = value_from_ast_untyped(arguments[name], self.variables)
                if value is None or value is Undefined:  # not given
                    continue
                if not isinstance(value, int) or value < 0:
                    raise LimitExceeded(f"`{name}` must be a whole number.", "PAGE_SIZE_INVALID")
                if value > settings.DEPOT_GRAPHQL_MAX_PAGE_SIZE:
                    raise LimitExceeded(
                        f"`{name}` is at most {settings.DEPOT_GRAPHQL_MAX_PAGE_SIZE}, not {value}.",
                        "PAGE_SIZE_EXCEEDED",
                    )
                sizes.append(value)
        connection = getattr(child_type, "name", "").endswith("Connection")
        if connection:
            for name in ("after", "before"):
                if name in arguments:
                    _check_cursor(name, value_from_ast_untyped(arguments[name], self.variables))
        if sizes:
            return max(sizes)
        if connection:
            return int(settings.DEPOT_GRAPHQL_MAX_PAGE_SIZE)
        return 1


def _check_cursor(name: str, cursor: Any) -> None:
    """A connection's `after`/`before` is a cursor it gave out (an offset), or nothing; else
    strawberry failed on it as an unexpected error."""
    if cursor is None or cursor is Undefined:
        return
    try:
        prefix, offset = from_base64(cursor)
    except (ValueError, TypeError):
        prefix, offset = "", ""
    if prefix != CURSOR_PREFIX or not (offset.isascii() and offset.isdigit()):
        raise LimitExceeded(
            f"`{name}` is not a cursor of this connection: pass one it returned.",
            "INVALID_CURSOR",
        )
