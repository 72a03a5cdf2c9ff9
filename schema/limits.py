"""Limits that refuse an abusive operation before any resolver runs.

Depth, aliases and tokens use strawberry's validators. Page size and cost need the variables, so
they are checked here at the start of execution, before the first resolver: every field costs 1,
times the page sizes (`first`/`last`, or the default page size for a connection without one, or
the number of `ids` asked for) of the fields above it. Under a field of an interface or union type
(`node`, `nodes`) the selection costs what it would cost on the costliest of the types it can be.

Text with a NUL character (U+0000) is refused here too, as INVALID_INPUT: Postgres stores no
such text (nor JSON holding it), so every field that wrote or filtered by it failed as an
unexpected error, and a bulk edit with one such row failed whole.

So is text over the limit a filter field or an argument of a query or subscription declares
(`metadata=text_limit(...)`): INVALID_INPUT naming it (`extensions.inputPath`) and its limit,
wherever it is used (a root field, a nested connection, the `jobs` subscription) and before
anything reads the database. Before, only the 2.5 MB body bounded them: a `titleContains` of
megabytes went to Postgres as an ILIKE pattern. Text a mutation takes is the services' to
check (domain/common/text.py), as for every text they store. And a connection cursor is one
Depot gave out: its offset fits a bigint (a longer one failed as an unexpected error).

Lists a query or subscription takes have a declared limit on their items too (`list_limit`,
or `text_limit(items=)` for texts), and so do the lists strawberry-django declares for us
(`ordering`, `nodes`' `ids`, in `_GENERATED`): before, a `stateIn` or an `ordering` of
hundreds of thousands of entries, sent as a variable (which the token limit does not count),
was coerced and handed to the resolvers. A filter nests at most `MAX_FILTER_NESTING` filters
of its own type in one another (AND, OR, NOT): before, up to the 200 levels graphql-core
allows went to Postgres as a WHERE nested as deep (more had graphql-core's "Variable values are
nested too deeply." without a code). Lists a mutation takes are the services' to check.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from graphql import (
    BREAK,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLArgument,
    GraphQLError,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
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
    value_from_ast,
    value_from_ast_untyped,
    visit,
)
from graphql.execution.values import get_variable_values
from strawberry.extensions import SchemaExtension
from strawberry.relay.types import PREFIX as CURSOR_PREFIX
from strawberry.relay.utils import from_base64
from strawberry.schema.schema_converter import GraphQLCoreConverter

from domain.assets.multipart import MAX_PARTS
from domain.common.text import TextTooLong, TooManyItems, require_items, require_length
from schema.errors import error_extensions

_LIMIT = "depot.text_limit"

# A list a client looks things up with (a filter's `stateIn`): far more than any lookup needs.
LIST_ITEMS = 100
# Each column once, with room to spare: no order type has more than 4 fields.
ORDERING_ITEMS = 10
# `nodes(ids:)`: a page of objects, as `first` is at most (DEPOT_GRAPHQL_MAX_PAGE_SIZE's default).
NODES_IDS = 100
# AND/OR/NOT inside one another: `{tag: "a", AND: {tag: "b", AND: ...}}` is how a client asks
# for several tags (or, with OR, several collections), so this is not 2 or 3.
MAX_FILTER_NESTING = 10
# The raw variables, before graphql-core coerces them (twice: for the checks here, and to
# execute): no list far longer than the longest any argument takes (a multipart upload's parts;
# twice that, so a list just over a field's own limit gets that field's error), and nothing
# nested deeper than any input nests (a filter's ten levels are twenty here). Coercing a 2.5 MB
# list of enums took 1.4 s of CPU for a refusal; this walk takes milliseconds.
LONGEST_ARGUMENT = MAX_PARTS
RAW_VARIABLE_ITEMS = 2 * LONGEST_ARGUMENT
RAW_VARIABLE_NESTING = 32


@dataclass(frozen=True)
class InputLimit:
    chars: int | None = None  # of the text, or of each text of a list
    items: int | None = None  # of a list


def text_limit(chars: int, *, items: int | None = None) -> dict[str, InputLimit]:
    """The `metadata` of a filter field or an argument of free text: at most `chars`
    characters (each, for a list of texts) and, for a list, at most `items` of them."""
    return {_LIMIT: InputLimit(chars, items)}


def list_limit(items: int = LIST_ITEMS) -> dict[str, InputLimit]:
    """The `metadata` of a filter field or an argument that is a list (of enums, of ids): at
    most `items` of them."""
    return {_LIMIT: InputLimit(items=items)}


# The arguments strawberry-django makes (no metadata of theirs to declare a limit in), by name.
_GENERATED = {"ordering": InputLimit(items=ORDERING_ITEMS), "ids": InputLimit(items=NODES_IDS)}


def limit_of(definition: GraphQLArgument | GraphQLInputField) -> InputLimit | None:
    """The limit an argument or input field declares, if any."""
    declared = (definition.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    limit = (getattr(declared, "metadata", None) or {}).get(_LIMIT)
    if limit is None and isinstance(definition, GraphQLArgument):
        limit = _GENERATED.get(getattr(declared, "python_name", ""))
    return limit if isinstance(limit, InputLimit) else None


class LimitExceeded(GraphQLError):
    def __init__(self, message: str, code: str, input_path: list[str] | None = None) -> None:
        super().__init__(message, extensions=error_extensions(code, input_path))


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
                _check_raw_variables(context.variables or {})
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
                try:
                    cost = measure.selection_cost(operation.selection_set, root, 1)
                except (TextTooLong, TooManyItems) as error:
                    raise LimitExceeded(error.message, error.code, error.path) from None
                if cost > settings.DEPOT_GRAPHQL_MAX_COST:
                    raise LimitExceeded(
                        f"The query would cost {cost}; the limit is "
                        f"{settings.DEPOT_GRAPHQL_MAX_COST}: ask for smaller pages or fewer "
                        "fields.",
                        "QUERY_TOO_COSTLY",
                    )
        yield


def _check_raw_variables(variables: dict[str, Any]) -> None:
    """Refuse variables no argument could take, before they are coerced (RAW_VARIABLE_*)."""
    pending: list[tuple[Any, list[str]]] = [
        (value, [f"${name}"]) for name, value in variables.items()
    ]
    while pending:
        value, path = pending.pop()
        if isinstance(value, list):
            if len(value) > RAW_VARIABLE_ITEMS:
                raise LimitExceeded(
                    f"`{path[0]}` holds a list of {len(value):,} items; no argument takes more "
                    f"than {LONGEST_ARGUMENT:,}.",
                    "INVALID_INPUT",
                    path,
                )
            children: Any = enumerate(value)
        elif isinstance(value, dict):
            children = value.items()
        else:
            continue
        if len(path) > RAW_VARIABLE_NESTING:
            raise LimitExceeded(
                f"`{path[0]}` nests more than {RAW_VARIABLE_NESTING} lists and objects in one "
                "another; no argument takes that.",
                "INVALID_INPUT",
                path[:1],
            )
        pending.extend(
            (child, [*path, str(key)]) for key, child in children if isinstance(child, list | dict)
        )


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
        if node.arguments:
            self.check_text(node, definition)
        child_type = get_named_type(definition.type)
        page = self.page_size(node, child_type)
        own = multiplier
        return own + self.selection_cost(node.selection_set, child_type, multiplier * page)

    def check_text(self, node: FieldNode, definition: GraphQLField) -> None:
        """TextTooLong, TooManyItems or LimitExceeded for an argument over its declared
        limits (its text, its lists' items, its filters' nesting)."""
        for argument in node.arguments or ():
            name = argument.name.value
            declared = definition.args.get(name)
            if declared is None or not _may_hold_limited_input(self.schema, declared):
                continue
            value = value_from_ast(argument.value, declared.type, self.variables)
            _check_input(value, declared.type, limit_of(declared), [name], 0)

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
    if cursor is None or cursor is Undefined or _is_offset_cursor(cursor):
        return
    raise LimitExceeded(
        f"`{name}` is not a cursor of this connection: pass one it returned.",
        "INVALID_CURSOR",
    )


def _is_offset_cursor(cursor: Any) -> bool:
    # An offset of more than 18 digits is none Depot gives out; past a bigint Postgres refused
    # it, as an unexpected error. Base64 of the prefix and 18 digits is 48 characters.
    if not isinstance(cursor, str) or len(cursor) > 64:
        return False
    try:
        prefix, offset = from_base64(cursor)
    except (ValueError, TypeError):
        return False
    return prefix == CURSOR_PREFIX and offset.isascii() and offset.isdigit() and len(offset) <= 18


def _check_input(
    value: Any,
    of_type: GraphQLInputType,
    limit: InputLimit | None,
    path: list[str],
    nesting: int,
) -> None:
    """`nesting`: how many input objects of their parent's own type (AND, OR, NOT of a
    filter) lead to this value."""
    if isinstance(of_type, GraphQLNonNull):
        of_type = of_type.of_type
    if value is None or value is Undefined:
        return
    if isinstance(of_type, GraphQLList):
        if limit is not None and limit.items is not None:
            require_items(value, limit=limit.items, path=path)
        for item in value:
            _check_input(item, of_type.of_type, limit, path, nesting)
    elif isinstance(of_type, GraphQLInputObjectType):
        for name, field in of_type.fields.items():
            if name not in value:
                continue
            inner = get_named_type(field.type) is of_type
            if inner and nesting >= MAX_FILTER_NESTING and value[name] is not None:
                raise LimitExceeded(
                    f"`{path[0]}` nests at most {MAX_FILTER_NESTING} filters in one another "
                    "(AND, OR, NOT); this one nests more.",
                    "INVALID_INPUT",
                    [*path, name],
                )
            deeper = nesting + 1 if inner else nesting
            _check_input(value[name], field.type, limit_of(field), [*path, name], deeper)
    elif isinstance(value, str) and limit is not None and limit.chars is not None:
        require_length(value, limit=limit.chars, path=path)


# Per schema, the input types with a limit to check (a field with one, a field of their own
# type, or a field of such a type): arguments of other types (ids of one object, page sizes)
# are not coerced a second time here.
_limited_types: dict[int, frozenset[str]] = {}


def _may_hold_limited_input(schema: GraphQLSchema, argument: GraphQLArgument) -> bool:
    if limit_of(argument) is not None:
        return True
    limited = _limited_types.get(id(schema))
    if limited is None:
        limited = _limited_types[id(schema)] = _input_types_with_limits(schema)
    return get_named_type(argument.type).name in limited


def _input_types_with_limits(schema: GraphQLSchema) -> frozenset[str]:
    inputs = [t for t in schema.type_map.values() if isinstance(t, GraphQLInputObjectType)]
    found = {
        t.name
        for t in inputs
        if any(limit_of(f) or get_named_type(f.type) is t for f in t.fields.values())
    }
    grew = True
    while grew:  # types holding those (a filter nests itself, too: AND, OR, NOT)
        grew = False
        for input_type in inputs:
            fields = input_type.fields.values()
            if input_type.name not in found and any(
                get_named_type(f.type).name in found for f in fields
            ):
                found.add(input_type.name)
                grew = True
    return frozenset(found)
