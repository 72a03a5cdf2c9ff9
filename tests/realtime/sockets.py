"""Depot's websocket consumer in process (asgiref's ApplicationCommunicator), raw frames kept."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.db import connections

from realtime.consumer import DepotWSConsumer
from schema import schema


class Socket:
    """One graphql-transport-ws connection to the consumer, raw frames kept as sent. `scope`
    adds to the connection's scope (`user` and `session`, as Channels' auth middleware sets
    them for a browser's cookie)."""

    def __init__(self, **scope: Any) -> None:
        self.app = ApplicationCommunicator(
            DepotWSConsumer.as_asgi(schema=schema),
            {
                "type": "websocket",
                "path": "/graphql/",
                "headers": [],
                "query_string": b"",
                "subprotocols": ["graphql-transport-ws"],
                **scope,
            },
        )
        self.frames: dict[str, list[str]] = {}

    async def open(self, token: str) -> None:
        await self.app.send_input({"type": "websocket.connect"})
        accepted = await self.app.receive_output(5)
        assert accepted["type"] == "websocket.accept", accepted
        await self.send({"type": "connection_init", "payload": {"authToken": token}})
        assert json.loads((await self.app.receive_output(5))["text"])["type"] == "connection_ack"

    async def send(self, message: dict[str, Any]) -> None:
        await self.app.send_input({"type": "websocket.receive", "text": json.dumps(message)})

    async def subscribe(self, sub_id: str, query: str, variables: dict[str, Any]) -> None:
        self.frames.setdefault(sub_id, [])
        payload = {"query": query, "variables": variables}
        await self.send({"id": sub_id, "type": "subscribe", "payload": payload})

    async def collect(self, sub_id: str, count: int, wait: float = 10) -> list[str]:
        """Frames of `sub_id` until it has `count` (others are filed under their ids)."""
        while len(self.frames[sub_id]) < count:
            output = await self.app.receive_output(wait)
            assert output["type"] == "websocket.send", output
            frame = output["text"]
            self.frames.setdefault(json.loads(frame)["id"], []).append(frame)
        return self.frames[sub_id][:count]

    async def close(self) -> None:
        await self.app.send_input({"type": "websocket.disconnect", "code": 1000})
        await self.app.wait(5)

    async def closed(self, wait: float = 10) -> int | None:
        """Wait for the server to close the socket; its close code."""
        while True:
            output = await self.app.receive_output(wait)
            if output["type"] == "websocket.close":
                return output.get("code")


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    """asyncio.run(scenario()), closing the connections its thread hops opened."""

    async def main() -> Any:
        try:
            return await scenario()
        finally:
            await sync_to_async(close_db)()

    return asyncio.run(main())


def close_db() -> None:
    """Close the connections sync_to_async's thread opened (the test database is dropped)."""
    for connection in connections.all(initialized_only=True):
        connection.close()
