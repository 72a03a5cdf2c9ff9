"""The baseline: a bare Channels JSON consumer on the same workspace group as Depot's events().

It joins realtime.groups.workspace_events(<workspace>) and forwards every `depot.event` group
message (the very messages Depot's realtime.publish sends after commit) as plain JSON:
{"sequence": ..., "payload": ...}, the same two fields the Depot subscribers select. No auth, no
GraphQL, no replay, no gap filling: the floor of "push a channel-layer message to a socket".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from realtime import groups


class BareEventsConsumer(AsyncJsonWebsocketConsumer):
    # Stock Channels, not Depot's reader (realtime.layers): see settings.py.
    channel_layer_alias = "stock"
    group: str | None = None

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.group = groups.workspace_events(int(query["workspace"][0]))
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def depot_event(self, message: dict[str, Any]) -> None:  # type "depot.event"
        await self.send_json({"sequence": message["sequence"], "payload": message["payload"]})

    async def depot_events(self, message: dict[str, Any]) -> None:  # type "depot.events"
        # Several events of one commit (Depot's held jobs); the bench's producer sends one.
        for event in message["events"]:
            await self.depot_event(event)
