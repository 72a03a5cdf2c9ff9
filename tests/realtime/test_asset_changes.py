"""assetChanged(collectionId): what the subscribers of a collection hear of its assets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from domain.accounts.actor import Actor
from domain.accounts.models import User, Workspace
from domain.assets.editing import asset_move
from domain.common.ids import global_id
from realtime import publish
from tests import factories
from tests.realtime.sockets import Socket, close_db

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

CHANGES = """subscription($c: ID!) {
  assetChanged(collectionId: $c) { type assetId asset { collection { id } } }
}"""
STATS = """subscription($w: ID!) { jobStats(workspaceId: $w) { counts { state } } }"""


def test_a_move_is_heard_in_the_collection_it_leaves_and_the_one_it_joins(
    workspace: Workspace, owner: User, token: str
) -> None:
    source = factories.collection(workspace, "From")
    target = factories.collection(workspace, "To")
    asset = factories.asset(source)

    def move() -> None:
        asset_move(assets=[asset], collection=target, actor=Actor(user=owner))
        publish.flush()

    async def scenario() -> dict[str, Any]:
        socket = Socket()
        await socket.open(token)
        try:
            await socket.subscribe("from", CHANGES, {"c": global_id("Collection", source.pk)})
            await socket.subscribe("to", CHANGES, {"c": global_id("Collection", target.pk)})
            # A socket joins its subscriptions' groups in the order they came: once jobStats
            # (sent last) has answered, the two above are live.
            await socket.subscribe("stats", STATS, {"w": global_id("Workspace", workspace.pk)})
            await socket.collect("stats", 1)
            await sync_to_async(move)()
            heard = {}
            for sub_id in ("from", "to"):
                [frame] = await socket.collect(sub_id, 1)
                heard[sub_id] = json.loads(frame)["payload"]["data"]["assetChanged"]
            return heard
        finally:
            await socket.close()
            await sync_to_async(close_db)()

    heard = asyncio.run(scenario())
    moved = {
        "type": "asset.moved",
        "assetId": global_id("Asset", asset.pk),
        "asset": {"collection": {"id": global_id("Collection", target.pk)}},
    }
    assert heard == {"from": moved, "to": moved}
