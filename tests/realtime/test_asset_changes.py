"""assetChanged(collectionId, after): what the subscribers of a collection hear of its assets:
each change once and in order, those missed while away replayed after the cursor."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from domain.accounts.actor import Actor
from domain.accounts.models import User, Workspace
from domain.assets.deletion import _delete_collection_if_empty
from domain.assets.editing import AssetChanges, asset_move, asset_update
from domain.assets.models import Asset, Collection
from domain.assets.services import asset_event_payload
from domain.common.ids import global_id
from domain.jobs import events
from domain.jobs.selectors import event_cursor_state
from domain.jobs.services import events_prune
from realtime import publish
from tests import factories
from tests.realtime.sockets import Socket, close_db, run

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

CHANGES = """subscription($c: ID!) {
  assetChanged(collectionId: $c) { type assetId asset { collection { id } } }
}"""
SINCE = """subscription($c: ID!, $a: Int) {
  assetChanged(collectionId: $c, after: $a) { type sequence assetId asset { title } }
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


def _retitle(owner: User, asset: Asset, title: str) -> None:
    asset_update(asset=asset, changes=AssetChanges(title=title), actor=Actor(user=owner))
    publish.flush()


def _last_sequence(workspace: Workspace) -> int:
    return int(event_cursor_state(workspace_id=workspace.pk)[0])


def _changes(frames: list[str]) -> list[Any]:
    return [json.loads(frame)["payload"]["data"]["assetChanged"] for frame in frames]


def test_changes_made_while_away_are_replayed_after_the_cursor_then_live_ones_follow(
    workspace: Workspace, owner: User, token: str
) -> None:
    watched, elsewhere = factories.collection(workspace), factories.collection(workspace)
    asset, other = factories.asset(watched), factories.asset(elsewhere)
    cursor = _last_sequence(workspace)
    _retitle(owner, asset, "away 1")
    _retitle(owner, other, "another collection's")
    _retitle(owner, asset, "away 2")
    first_missed = cursor + 1

    async def scenario() -> list[str]:
        socket = Socket()
        await socket.open(token)
        await socket.subscribe("s", SINCE, {"c": global_id("Collection", watched.pk), "a": cursor})
        replayed = await socket.collect("s", 2)
        await sync_to_async(_retitle)(owner, asset, "live")
        frames = await socket.collect("s", 3)
        assert await socket.app.receive_nothing(0.3), "no duplicate"
        assert replayed == frames[:2]
        return frames

    changes = _changes(run(scenario))
    gid = global_id("Asset", asset.pk)
    # The asset as it is when sent; the sequences are the events', the other collection's skipped.
    assert changes == [
        {
            "type": "asset.updated",
            "sequence": first_missed,
            "assetId": gid,
            "asset": {"title": "away 2"},
        },
        {
            "type": "asset.updated",
            "sequence": cursor + 3,
            "assetId": gid,
            "asset": {"title": "away 2"},
        },
        {
            "type": "asset.updated",
            "sequence": cursor + 4,
            "assetId": gid,
            "asset": {"title": "live"},
        },
    ]


def test_a_lost_live_change_still_reaches_the_subscriber(
    workspace: Workspace, owner: User, token: str, settings: Any
) -> None:
    """channels-redis is at-most-once: a change whose message was lost is read from the
    events once the subscription has heard nothing for DEPOT_WS_IDLE_CHECK_SECONDS."""
    settings.DEPOT_WS_IDLE_CHECK_SECONDS = 0.2
    collection = factories.collection(workspace)
    asset = factories.asset(collection)

    async def scenario() -> list[str]:
        socket = Socket()
        await socket.open(token)
        await socket.subscribe("s", SINCE, {"c": global_id("Collection", collection.pk)})
        await socket.subscribe("stats", STATS, {"w": global_id("Workspace", workspace.pk)})
        await socket.collect("stats", 1)  # the subscription above is live
        with mock.patch.object(publish, "publish_events"):  # the live message is lost
            await sync_to_async(_retitle)(owner, asset, "lost on the way")
        frames = await socket.collect("s", 1, wait=5)
        assert await socket.app.receive_nothing(0.5), "no duplicate"
        return frames

    (change,) = _changes(run(scenario))
    assert change["type"] == "asset.updated"
    assert change["asset"] == {"title": "lost on the way"}


def test_a_subscriber_that_fell_behind_resumes_from_the_cursor_it_is_given(
    workspace: Workspace, token: str, settings: Any
) -> None:
    settings.DEPOT_WS_BACKLOG = 10
    collection = factories.collection(workspace)
    asset = factories.asset(collection)
    start = _last_sequence(workspace)

    def burst() -> None:
        with transaction.atomic():  # one message of 40 events: more than the backlog at once
            for _ in range(40):
                events.record(workspace.pk, "asset.updated", asset_event_payload(asset))
        publish.flush()

    async def scenario() -> tuple[dict[str, Any], list[str]]:
        socket = Socket()
        await socket.open(token)
        variables = {"c": global_id("Collection", collection.pk)}
        await socket.subscribe("s", SINCE, variables)
        await socket.subscribe("stats", STATS, {"w": global_id("Workspace", workspace.pk)})
        await socket.collect("stats", 1)
        await sync_to_async(burst)()
        (ended,) = await socket.collect("s", 1, wait=5)
        error = json.loads(ended)["payload"]["errors"][0]
        resume = error["extensions"]["resumeAfter"]
        await socket.subscribe("again", SINCE, {**variables, "a": resume})
        return error, await socket.collect("again", 40 - (resume - start))

    error, frames = run(scenario)
    assert error["extensions"]["code"] == "SUBSCRIBER_TOO_SLOW"
    assert "`after` set to resumeAfter" in error["message"]
    assert start <= error["extensions"]["resumeAfter"] < start + 40
    sequences = [change["sequence"] for change in _changes(frames)]
    assert sequences == list(range(error["extensions"]["resumeAfter"] + 1, start + 41))


def test_the_subscription_completes_when_its_collection_is_deleted(
    workspace: Workspace, token: str
) -> None:
    collection = factories.collection(workspace)

    def delete() -> None:
        assert _delete_collection_if_empty(workspace.pk, collection.pk) == "deleted"
        publish.flush()

    async def scenario() -> list[str]:
        socket = Socket()
        await socket.open(token)
        await socket.subscribe("s", SINCE, {"c": global_id("Collection", collection.pk)})
        await socket.subscribe("stats", STATS, {"w": global_id("Workspace", workspace.pk)})
        await socket.collect("stats", 1)
        await sync_to_async(delete)()
        return await socket.collect("s", 1, wait=5)

    (frame,) = run(scenario)
    assert json.loads(frame) == {"id": "s", "type": "complete"}
    assert not Collection.objects.filter(pk=collection.pk).exists()


@pytest.mark.parametrize("after", ["future", "pruned"])
def test_a_cursor_that_would_lose_changes_is_refused(
    workspace: Workspace, owner: User, token: str, after: str, settings: Any
) -> None:
    collection = factories.collection(workspace)
    asset = factories.asset(collection)
    _retitle(owner, asset, "one")
    _retitle(owner, asset, "two")
    last = _last_sequence(workspace)
    if after == "pruned":  # all of them: the retention window has passed
        days = settings.DEPOT_EVENT_RETENTION_DAYS + 1
        assert events_prune(now=timezone.now() + timedelta(days=days)) == last
    cursor = last + 1 if after == "future" else 0

    async def scenario() -> list[str]:
        socket = Socket()
        await socket.open(token)
        await socket.subscribe(
            "s", SINCE, {"c": global_id("Collection", collection.pk), "a": cursor}
        )
        return await socket.collect("s", 1)

    (frame,) = run(scenario)
    error = json.loads(frame)["payload"]["errors"][0]
    assert error["extensions"]["code"] == (
        "CURSOR_INVALID" if after == "future" else "CURSOR_EXPIRED"
    )
