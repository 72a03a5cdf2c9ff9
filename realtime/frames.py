"""Sending a subscription's `next` frames without executing GraphQL once per subscriber.

strawberry runs every subscription as one operation task per socket (graphql-transport-ws), and
executes the document for every event it yields: with 1,000 subscribers of one workspace, the
same selection of the same event is executed and serialised 1,000 times per process. A resolver
that can render its own result (see `events()` in schema/subscriptions.py) asks `frame_sender()`
for a sender bound to the running operation, serialises the `{"data": ...}` payload once per
event (shared by every subscriber of the process through `SharedPayloads`), and sends
`{"id": <this operation>, "type": "next", "payload": <shared>}` itself: byte for byte what
strawberry would send, without the per-subscriber execution, extension hooks and encoding.

Everything else stays strawberry's: parsing, validation, limits, the resolver's own checks, and
errors and completion (an exception from the resolver still ends the operation the usual way).
"""

from __future__ import annotations

import collections
import logging
from contextvars import ContextVar
from typing import Any

from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)

logger = logging.getLogger(__name__)

# The graphql-transport-ws operation whose task is running (each operation has its own task,
# so its own copy of the context).
_operation: ContextVar[Operation[Any, Any] | None] = ContextVar("depot_ws_operation", default=None)


class SocketRefused(Exception):
    """Raised by the consumer's on_ws_connect to close the socket with its own code and reason.

    strawberry closes every ConnectionRejectionError with 4403 "Forbidden" and drops its
    payload, which a client takes for bad credentials (the dashboard signs out and stops
    retrying): a refusal that passes by itself, as a user over the socket limit, needs a
    code that says "try again later"."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class DepotTransportWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """strawberry's graphql-transport-ws handler; also tells resolvers their operation, and
    keeps the socket alive or closes it properly whatever a client sends.

    strawberry reads a message's fields as if its shape were right and only catches a missing
    key: a frame that is JSON but not an object (`[]`, `42`), an `id` that is not a string, or
    a `subscribe` whose payload is not an object raised in the handler's task, which ended it
    and left an open socket that answered nothing, not even a ping. Such a message now closes
    the socket with 4400, as the protocol says; anything else that escapes the handling of one
    message (a database error while authenticating) closes it with 1011, and the client can
    reconnect.
    """

    async def handle_message(self, message: Any) -> None:
        problem = _malformed(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        try:
            await super().handle_message(message)
        except WebSocketDisconnected:
            raise  # the client left: strawberry's handler ends quietly
        except Exception:
            logger.exception("closing a websocket: handling its %r message failed", message["type"])
            await self.websocket.close(code=1011, reason="Internal error")

    async def handle_connection_init(self, message: Any) -> None:
        try:
            await super().handle_connection_init(message)
        except SocketRefused as refused:
            await self.websocket.close(code=refused.code, reason=refused.reason)

    async def handle_subscribe(self, message: Any) -> None:
        # Each operation counts against the caller's rate limits (the consumer's check).
        check = getattr(self.view, "operation_refused", None)
        if (
            check is not None
            and self.connection_acknowledged
            and message["id"] not in self.operations
        ):
            refused = await check()
            if refused is not None:
                payload = [refused.formatted]
                await self.send_message({"id": message["id"], "type": "error", "payload": payload})
                return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Any, Any]) -> None:
        token = _operation.set(operation)
        try:
            await super().run_operation(operation)
        finally:
            # The task's context would otherwise hold the operation, which holds the task: a
            # cycle per subscription that only the collector frees (project/collector.py).
            _operation.reset(token)


class FrameSender:
    """Sends pre-serialised `next` payloads as frames of one operation."""

    __slots__ = ("_consumer", "_head", "_operation", "encode")

    def __init__(self, operation: Operation[Any, Any], consumer: Any) -> None:
        self._operation = operation
        self._consumer = consumer
        self.encode = consumer.encode_json
        # The frame as strawberry builds it ({"id", "type", "payload"}, encoded by the same
        # encoder), with the payload spliced in: encode with a one-character stand-in, cut it.
        head = self.encode({"id": operation.id, "type": "next", "payload": 0})
        if not isinstance(head, str) or not head.endswith("0}"):
            raise ValueError("unexpected frame encoding")
        self._head = head[:-2]

    async def send(self, payload: str) -> None:
        """Send `payload` (an encoded {"data": ...}) unless the operation already ended."""
        if self._operation.completed:
            return
        await self._consumer.send(text_data=self._head + payload + "}")


def _malformed(message: Any) -> str | None:
    """Why a message does not have the protocol's shape, or None if it has."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "A message is a JSON object with a string `type`"
    kind = message["type"]
    if kind in ("subscribe", "complete") and not isinstance(message.get("id"), str):
        return f"A {kind} message needs a string `id`"
    payload = message.get("payload")
    if kind != "subscribe":
        if payload is not None and not isinstance(payload, dict):
            return f"The payload of a {kind} message is an object"
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return "A subscribe message's payload is an object with a string `query`"
    for name, kinds in (("variables", dict), ("extensions", dict), ("operationName", str)):
        if payload.get(name) is not None and not isinstance(payload[name], kinds):
            return f"`{name}` in a subscribe message's payload has the wrong type"
    return None


def frame_sender(consumer: Any) -> FrameSender | None:
    """A sender for the operation running now, or None (not over graphql-transport-ws)."""
    operation = _operation.get()
    if operation is None or consumer is None or operation.handler.view is not consumer:
        return None
    try:
        return FrameSender(operation, consumer)
    except ValueError:
        return None


class SharedPayloads:
    """Encoded payloads by key, shared by the subscriptions of one process; the newest kept.

    Keys must identify the payload completely (the selection, the encoder and the immutable
    event); the cache only saves work, it never changes what is sent.
    """

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._items: collections.OrderedDict[Any, str] = collections.OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Any) -> str | None:
        payload = self._items.get(key)
        if payload is not None:
            self.hits += 1
        return payload

    def put(self, key: Any, payload: str) -> None:
        self.misses += 1
        self._items[key] = payload
        if len(self._items) > self.size:
            self._items.popitem(last=False)
