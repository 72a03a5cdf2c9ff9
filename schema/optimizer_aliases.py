"""One prefetch for the aliases of a relation that have the same arguments.

strawberry-django's optimizer means to prefetch a relation once for all of its aliases when
their arguments are the same (`_get_model_hints`), but compares the arguments' AST nodes with
`==`, and graphql-core's node equality includes each node's source location (`Node.keys` is
`("loc",)`): two aliases never compare equal, so none of them was prefetched, and
`a: assets(first: 2) b: assets(first: 2)` under 20 collections ran 40 queries. Here the
arguments are compared as printed GraphQL. Aliases with different arguments are still not
prefetched (Django keeps one prefetch per relation), as strawberry-django intends.
tests/schema/test_compiled_execution.py counts the statements.
"""

from __future__ import annotations

from graphql import FieldNode, print_ast
from strawberry_django import optimizer


def field_arguments(node: FieldNode) -> tuple[tuple[str, str], ...]:
    """The arguments of a field as (name, printed value) pairs, without source locations."""
    return tuple(
        sorted(
            (argument.name.value, print_ast(argument.value)) for argument in node.arguments or ()
        )
    )


def install() -> None:
    # Only where the optimizer still has the comparison this replaces.
    if hasattr(optimizer, "_get_field_arguments"):
        optimizer._get_field_arguments = field_arguments
