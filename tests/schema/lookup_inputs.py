"""What the tests of lookup limits (test_lookup_text_limits.py, test_lookup_list_limits.py)
share: the refusal they expect, and every input a query or subscription takes, for the guards
that fail when one is added without a limit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
)

from schema import schema

Input = GraphQLArgument | GraphQLInputField


def refused(body: dict[str, Any], path: list[str], message: str) -> None:
    """A request error before any resolver: INVALID_INPUT about the input at `path`."""
    assert body.get("data") is None, body
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "INVALID_INPUT", "inputPath": path}, error
    assert message in error["message"], error


def lookup_inputs() -> Iterator[tuple[str, str, Input]]:
    """(where, name, definition) of every argument of a query's or subscription's field (nested
    connections' included) and of every input field within it. Mutations' inputs are their
    services' to check, as for what they store."""
    for owner in schema._schema.type_map.values():
        if owner.name == "Mutation" or isinstance(owner, GraphQLInputObjectType):
            continue
        for field_name, field in (getattr(owner, "fields", None) or {}).items():
            for arg_name, arg in (getattr(field, "args", None) or {}).items():
                where = f"{owner.name}.{field_name}({arg_name})"
                yield where, arg_name, arg
                yield from _input_fields(arg.type, where, set())


def _input_fields(of_type: GraphQLInputType, path: str, seen: set[str]) -> Iterator[Any]:
    while isinstance(of_type, GraphQLNonNull | GraphQLList):
        of_type = of_type.of_type
    if isinstance(of_type, GraphQLInputObjectType) and of_type.name not in seen:
        seen.add(of_type.name)
        for name, field in of_type.fields.items():
            yield f"{path}.{name}", name, field
            yield from _input_fields(field.type, f"{path}.{name}", seen)


def is_list(of_type: GraphQLInputType) -> bool:
    if isinstance(of_type, GraphQLNonNull):
        of_type = of_type.of_type
    return isinstance(of_type, GraphQLList)
