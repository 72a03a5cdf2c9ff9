"""Subscriptions recover what the live path lost, refuse cursors that would lose events, and
never go silent: in process, through Depot's websocket consumer."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction

from domain.accounts.models import Workspace
from domain.common.ids import global_id
from domain.jobs import events
from domain.jobs.models import Job, JobState
from realtime import groups
from realtime import publish as publish_module
from schema import subscriptions
from tests.realtime.sockets import Socket, run

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

EVENTS = "subscription($w: ID!, $a: Int) { events(workspaceId: $w, after: $a) { sequence type } }"
JOB = "subscription($id: ID!) { job(id: $id) { state } }"
STATS = "subscription($w: ID!) { jobStats(workspaceId: $w) { counts { state count } } }"


def _record(workspace: Workspace, n: int) -> int:
    """Record n events; the workspace's last sequence."""
    for i in range(n):
        with transaction.atomic():
            event = events.record(workspace.pk, "test.tick", {"i": i})
    publish_module.flush()
    return event.sequence


def _record_at_once(workspace: Workspace, n: int) -> None:
    with transaction.atomic():
        for i in range(n):
            events.record(workspace.pk, "test.tick", {"i": i})
    publish_module.flush()


def _first_events_frame(token: str, workspace: Workspace, after: int) -> str:
    """The first frame of an events(after:) subscription of the workspace."""

    async def scenario() -> list[str]:
        socket = Socket()
        await socket.open(token)
        variables = {"w": global_id("Workspace", workspace.pk), "a": after}
        await socket.subscribe("s", EVENTS, variables)
        return await socket.collect("s", 1)

    (frame,) = run(scenario)
    return frame


def _error_code(frame: str) -> str:
    """The code of an error a subscription's resolver raised (strawberry sends it in `next`)."""
    message = json.loads(frame)
    assert message["type"] == "next", message
    assert message["payload"]["data"] is None
    return str(message["payload"]["errors"][0]["extensions"]["code"])


def _payloads(frames: list[str]) -> list[Any]:
    return [json.loads(frame).get("payload") for frame in frames]


@pytest.mark.parametrize("after", [5, -1])
def test_a_cursor_the_workspace_never_reached_is_refused(
    workspace: Workspace, token: str, after: int
) -> None:
    """Live events up to a cursor from the future would be dropped as already replayed."""
    last = _record(workspace, 2)
    after = last + 3 if after > 0 else after

    assert _error_code(_first_events_frame(token, workspace, after)) == "CURSOR_INVALID"


def test_a_replay_is_read_a_page_at_a_time_and_misses_nothing(
    workspace: Workspace, token: str
) -> None:
    """A page's events reach the client before the next page is read: a cursor days behind
    is never held in memory whole."""
    before = _record(workspace, 1)
    _record(workspace, 7)
    first_frame = threading.Event()
    sent_before_the_second_page: list[bool] = []

    async def scenario() -> list[str]:
        socket = Socket()
        await socket.open(token)
        variables = {"w": global_id("Workspace", workspace.pk), "a": before}
        await socket.subscribe("s", EVENTS, variables)
        frames = await socket.collect("s", 1)
        first_frame.set()
        return frames + (await socket.collect("s", 7))[1:]

    pages: list[int] = []
    events_after = subscriptions.jobs.events_after

    def counting(**kwargs: Any) -> Any:
        if pages:  # the second page waits (in its thread) for the client's first frame
            sent_before_the_second_page.append(first_frame.wait(timeout=3))
        page = events_after(**kwargs)
        pages.append(len(page))
        return page

    with (
        mock.patch.object(subscriptions, "REPLAY_PAGE", 3),
        mock.patch.object(subscriptions.jobs, "events_after", counting),
    ):
        frames = run(scenario)
    sequences = [p["data"]["events"]["sequence"] for p in _payloads(frames)]
    assert sequences == list(range(before + 1, before + 8))
    assert pages == [3, 3, 1]
    assert sent_before_the_second_page[0] is True


def test_a_lost_last_event_reaches_the_subscriber_once_it_is_idle(
    workspace: Workspace, token: str, settings: Any
) -> None:
    settings.DEPOT_WS_IDLE_CHECK_SECONDS = 0.2
    last = _record(workspace, 1)

    async def scenario() -> list[str]:
        socket = Socket()
        await socket.open(token)
        variables = {"w": global_id("Workspace", workspace.pk), "a": last}
        await socket.subscribe("s", EVENTS, variables)
        await asyncio.sleep(0.1)  # subscribed, replayed nothing
        with mock.patch.object(publish_module, "publish_events"):  # the live message is lost
            await sync_to_async(_record)(workspace, 1)
        frames = await socket.collect("s", 1, wait=5)
        assert await socket.app.receive_nothing(0.5), "no duplicate"
        return frames

    (payload,) = _payloads(run(scenario))
    assert payload == {"data": {"events": {"sequence": last + 1, "type": "test.tick"}}}


def test_a_job_whose_last_change_was_lost_still_ends_its_subscription(
    workspace: Workspace, token: str, settings: Any
) -> None:
    settings.DEPOT_WS_IDLE_CHECK_SECONDS = 0.2
    job = Job.objects.create(workspace=workspace, kind="asset.process", state=JobState.RUNNING)

    async def scenario() -> list[str]:
        socket = Socket()
        await socket.open(token)
        await socket.subscribe("s", JOB, {"id": global_id("Job", job.pk)})
        await socket.collect("s", 1)
        # Ends without its nudge (lost on the way).
        await sync_to_async(Job.objects.filter(pk=job.pk).update)(state=JobState.SUCCEEDED)
        return await socket.collect("s", 3, wait=5)

    frames = run(scenario)
    assert _payloads(frames)[:2] == [
        {"data": {"job": {"state": "RUNNING"}}},
        {"data": {"job": {"state": "SUCCEEDED"}}},
    ]
    assert json.loads(frames[2])["type"] == "complete"


def test_job_stats_tells_a_subscriber_that_fell_behind_instead_of_going_silent(
    workspace: Workspace, token: str, settings: Any
) -> None:
    settings.DEPOT_WS_BACKLOG = 10

    async def scenario() -> str:
        socket = Socket()
        await socket.open(token)
        await socket.subscribe("s", STATS, {"w": global_id("Workspace", workspace.pk)})
        await socket.collect("s", 1)
        layer = get_channel_layer()
        assert layer is not None
        nudge = {"type": groups.JOB_MESSAGE, "job_id": 1, "workspace_id": workspace.pk}
        for _ in range(30):  # a burst while the subscription coalesces
            await layer.group_send(groups.workspace_jobs(workspace.pk), nudge)
        frames = await socket.collect("s", 2, wait=5)
        return frames[1]

    assert _error_code(run(scenario)) == "SUBSCRIBER_TOO_SLOW"


def test_a_busy_sibling_subscription_does_not_make_a_quiet_one_fall_behind(
    workspace: Workspace, other_workspace: Workspace, settings: Any, owner: Any
) -> None:
    """The socket hands each listener every message of its type: another workspace's burst
    filled a quiet subscription's backlog and ended it with SUBSCRIBER_TOO_SLOW."""
    from domain.accounts.models import Role
    from domain.accounts.services import membership_add

    membership_add(workspace=other_workspace, user=owner, role=Role.OWNER)
    settings.DEPOT_WS_BACKLOG = 10

    async def scenario() -> list[str]:
        socket = Socket(user=owner)  # a session's socket: a token has one workspace
        await socket.app.send_input({"type": "websocket.connect"})
        assert (await socket.app.receive_output(5))["type"] == "websocket.accept"
        await socket.send({"type": "connection_init"})
        assert "connection_ack" in (await socket.app.receive_output(5))["text"]
        quiet = {"w": global_id("Workspace", workspace.pk)}
        busy = {"w": global_id("Workspace", other_workspace.pk)}
        await socket.subscribe("quiet", EVENTS, quiet)
        await socket.subscribe("busy", EVENTS, busy)
        await asyncio.sleep(0.2)
        await sync_to_async(_record_at_once)(other_workspace, 40)  # one message of 40 events
        (busy_end,) = await socket.collect("busy", 1, wait=5)
        assert _error_code(busy_end) == "SUBSCRIBER_TOO_SLOW"  # its own backlog: 10
        await sync_to_async(_record)(workspace, 1)
        return await socket.collect("quiet", 1, wait=5)

    (frame,) = run(scenario)
    assert json.loads(frame)["type"] == "next"
    assert json.loads(frame)["payload"]["data"]["events"]["type"] == "test.tick"


def test_events_pruned_between_the_cursor_check_and_the_replay_are_not_skipped(
    workspace: Workspace, token: str
) -> None:
    before = _record(workspace, 1)
    _record(workspace, 3)
    events_after = subscriptions.jobs.events_after

    def pruned_meanwhile(**kwargs: Any) -> Any:
        return [event for event in events_after(**kwargs) if event.sequence != before + 1]

    with mock.patch.object(subscriptions.jobs, "events_after", pruned_meanwhile):
        frame = _first_events_frame(token, workspace, before)
    assert _error_code(frame) == "CURSOR_EXPIRED"
