"""Plain queries and mutations over HTTP run synchronously, in the thread hop that admits the
request.

Under ASGI, the async view admits a request in one thread hop (rate limits, the token:
schema/http.py), then executes the operation on the event loop, where every resolver that
touches the database takes a hop of its own (strawberry-django's `sync_to_async`), and every
field is completed through graphql-core's awaitable checks. A query or mutation whose root
fields are all sync resolvers (every query Depot has but `events`, and every mutation: their
resolvers run inline here and in a thread hop under async execution, schema.mutations.either_mode)
needs none of that: the same schema, extensions and execution context run it with
`execute_sync`, in the thread that admitted it, through strawberry's own sync Django view, so
parsing the request, the response and its errors are strawberry's as well. The async view
answers everything else (subscriptions, `events`, batches, a persisted query sent by its hash
alone, anything that does not parse).

tests/schema/test_sync_lane.py sends the same requests down both lanes and compares them.
"""

from __future__ import annotations

from functools import lru_cache

from django.http import HttpRequest, HttpResponse
from graphql import FieldNode, OperationType
from strawberry.django.views import GraphQLView
from strawberry.schema.base import BaseSchema

from schema.context import DepotContext, context_for_request
from schema.operations import named_operation, request_params

# The root type of each operation type the lane runs (strawberry's default names).
_ROOTS = {OperationType.QUERY: "Query", OperationType.MUTATION: "Mutation"}


class SyncGraphQLView(GraphQLView[DepotContext, None]):
    """strawberry's sync Django view with Depot's context; the async view shapes the answer."""

    def get_context(self, request: HttpRequest, response: HttpResponse) -> DepotContext:
        return context_for_request(request, response)


class SyncLane:
    """The sync lane of one schema: its view, and which documents it takes."""

    def __init__(self, schema: BaseSchema, allow_queries_via_get: bool) -> None:
        self.schema = schema
        # Django makes a view instance per request; this one holds nothing of a request.
        self.view = SyncGraphQLView(
            schema=schema, graphql_ide=None, allow_queries_via_get=allow_queries_via_get
        )
        self._takes_document = lru_cache(maxsize=512)(self._document_verdict)

    def takes(self, request: HttpRequest) -> bool:
        """Whether this request is one plain query or mutation that the lane can answer. Cheap:
        it reads the body, and each document's verdict is remembered."""
        body = request_params(request)
        if body is None:  # a batch, or nothing the lane can read
            return False
        query, operation_name = body.get("query"), body.get("operationName")
        if not isinstance(query, str):
            return False
        if operation_name is not None and not isinstance(operation_name, str):
            return False
        return bool(self._takes_document(query, operation_name))

    def _document_verdict(self, query: str, operation_name: str | None) -> bool:
        found = named_operation(query, operation_name)
        if found is None or found[1].operation not in _ROOTS:
            return False
        _, operation = found
        root_type = self.schema.get_type_by_name(_ROOTS[operation.operation])
        fields = {
            self.schema.config.name_converter.get_graphql_name(field): field
            for field in getattr(root_type, "fields", ())
        }
        for selection in operation.selection_set.selections:
            if not isinstance(selection, FieldNode):
                return False  # fragments at the root: left to the async view
            name = selection.name.value
            if name == "__typename":
                continue
            field = fields.get(name)
            if field is None or field.is_async:
                return False
        return True


_lanes: dict[tuple[int, bool], SyncLane] = {}


def sync_lane(schema: BaseSchema, allow_queries_via_get: bool) -> SyncLane:
    key = (id(schema), allow_queries_via_get)
    lane = _lanes.get(key)
    if lane is None or lane.schema is not schema:
        lane = _lanes[key] = SyncLane(schema, allow_queries_via_get)
    return lane
