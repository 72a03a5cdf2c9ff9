"""Which operation of a document a request runs, found without executing anything."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest
from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, OperationType, parse

_NOT_ONE = object()  # remembered on the request: not a single operation's parameters


def request_params(request: HttpRequest) -> dict[str, Any] | None:
    """The GraphQL parameters of a GET or JSON POST request (`query`, `variables`,
    `operationName`, `extensions`, the last JSON-decoded), or None for a batch, a body that is
    not JSON, or another method. Parsed once per request; strawberry's view parses the body
    again when it executes, and reports what is wrong with it."""
    known = getattr(request, "_depot_params", None)
    if known is not None:
        return None if known is _NOT_ONE else known
    params = _parse_params(request)
    request._depot_params = _NOT_ONE if params is None else params  # type: ignore[attr-defined]
    return params


def _parse_params(request: HttpRequest) -> dict[str, Any] | None:
    if request.method == "POST":
        try:
            body = json.loads(request.body)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None
    if request.method != "GET":
        return None
    extensions: Any = request.GET.get("extensions")
    if isinstance(extensions, str):
        try:
            extensions = json.loads(extensions)
        except ValueError:
            return None
    return {
        "query": request.GET.get("query"),
        "variables": request.GET.get("variables"),
        "operationName": request.GET.get("operationName"),
        "extensions": extensions,
    }


def named_operation(
    query: str, operation_name: str | None
) -> tuple[DocumentNode, OperationDefinitionNode] | None:
    """The document and the operation a request names, or None if the document does not parse
    or the name picks no single operation. Callers cache their verdicts: this parses."""
    try:
        document = parse(query)
    except GraphQLError:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [op for op in operations if op.name and op.name.value == operation_name]
    if len(operations) != 1:
        return None
    return document, operations[0]


def query_operation(
    query: str, operation_name: str | None
) -> tuple[DocumentNode, OperationDefinitionNode] | None:
    """named_operation(), when that operation is a query."""
    found = named_operation(query, operation_name)
    if found is None or found[1].operation != OperationType.QUERY:
        return None
    return found
