"""Parsing with strawberry's shared parse cache, errors reported where strawberry reports them.

strawberry's ParserCache parses in its `on_parse` hook, which runs before strawberry's own
parsing step and outside its error handling. A document that does not parse (or has more
tokens than MaxTokensLimiter allows) then escaped the operation: over HTTP strawberry still
answered with the error, but over a websocket the subscription got a bare `complete` and the
server logged a traceback. Here a document that does not parse is left for strawberry's own
step, which parses it again and reports the error its way (over a websocket, a close with 4400
and the syntax error as the reason). Documents that parse are cached as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import ParserCache


class ReportingParserCache(ParserCache):
    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        # Not parsed here: strawberry's parsing step raises the error again, and reports it.
        with contextlib.suppress(GraphQLError):
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        yield
