"""Which operation of a document a request runs, found without executing anything."""

from __future__ import annotations

from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, OperationType, parse


def query_operation(
    query: str, operation_name: str | None
) -> tuple[DocumentNode, OperationDefinitionNode] | None:
    """The document and the query operation a request names, or None if the document does not
    parse, the name picks no single operation, or the operation is not a query. Callers cache
    their verdicts: this parses."""
    try:
        document = parse(query)
    except GraphQLError:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [op for op in operations if op.name and op.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
        return None
    return document, operations[0]
