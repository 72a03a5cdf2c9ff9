"""A small Depot client for tests: GraphQL over HTTP, uploads, graphql-transport-ws."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urljoin

import httpx
import websockets
from websockets.typing import Subprotocol


class GraphQLClient:
    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.token = token
        self.http = httpx.Client(timeout=30)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def execute(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        return self.http.post(
            urljoin(self.base_url, "graphql/"),
            json={"query": query, "variables": variables or {}},
            headers=self.headers(),
        )

    def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.execute(query, variables)
        body = response.json()
        assert response.status_code == 200, body
        assert "errors" not in body, body
        return dict(body["data"])

    def event_sequence(self, workspace_id: str) -> int:
        """The workspace's latest durable event: subscribing to `events` after it misses
        nothing from now on, however long the server takes to join the group."""
        found = self.data(
            "query($w: ID!) { workspace(id: $w) { eventSequence } }", {"w": workspace_id}
        )
        return int(found["workspace"]["eventSequence"])

    def post_upload(self, upload: dict[str, Any], content: bytes, filename: str) -> httpx.Response:
        """Post the bytes as the presigned form says: its fields first, then the file."""
        url = urljoin(self.base_url, upload["url"])
        files = {"file": (filename, content, upload["fields"].get("Content-Type", ""))}
        return self.http.post(url, data=upload["fields"], files=files)

    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://").replace("https://", "wss://") + "graphql/"

    @asynccontextmanager
    async def websocket(
        self, *, token: str | None = None, payload: dict[str, Any] | None = None
    ) -> AsyncIterator[TransportWS]:
        init = payload if payload is not None else {"authToken": token or self.token}
        async with websockets.connect(
            self.ws_url(), subprotocols=[Subprotocol("graphql-transport-ws")]
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": init}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert ack["type"] == "connection_ack", ack
            yield TransportWS(ws)


class TransportWS:
    """One graphql-transport-ws connection; subscriptions are told apart by their ids."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.inbox: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> int | None:
        """Route messages to their subscriptions until the socket closes; its close code."""
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                if message["type"] == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                    continue
                queue = self.inbox.get(message.get("id", ""))
                if queue is not None:
                    queue.put_nowait(message)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        return self.ws.close_code

    async def closed(self, wait: float = 20) -> int | None:
        """Wait for the server to close the socket; returns the close code."""
        return await asyncio.wait_for(asyncio.shield(self.reader), wait)

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self.next_id += 1
        sub_id = str(self.next_id)
        self.inbox[sub_id] = asyncio.Queue()
        await self.ws.send(
            json.dumps(
                {
                    "id": sub_id,
                    "type": "subscribe",
                    "payload": {"query": query, "variables": variables or {}},
                }
            )
        )
        return sub_id

    async def receive(self, sub_id: str, wait: float = 20) -> dict[str, Any]:
        return await asyncio.wait_for(self.inbox[sub_id].get(), wait)

    async def complete(self, sub_id: str) -> None:
        await self.ws.send(json.dumps({"id": sub_id, "type": "complete"}))
