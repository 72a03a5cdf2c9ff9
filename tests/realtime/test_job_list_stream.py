"""jobs(workspaceId, filters, after): every job of a workspace as it changes. State changes are
durable events, so they are replayed after a cursor, filled in when a live message was lost,
and a subscriber that fell behind resumes from the cursor it is given; progress is live only."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from domain.accounts.actor import Actor
from domain.accounts.models import User, Workspace
from domain.common.ids import global_id
from domain.jobs.models import Job
from domain.jobs.selectors import event_cursor_state
from domain.jobs.services import job_cancel, job_create
from realtime import publish
from schema import subscriptions
from tests.realtime.sockets import Socket, run

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

JOBS = """subscription($w: ID!, $a: Int) {
  jobs(workspaceId: $w, after: $a) { id state progress { done } } }"""
STATS = """subscription($w: ID!) { jobStats(workspaceId: $w) { counts { state } } }"""


def _queue(workspace: Workspace, count: int = 1) -> list[Job]:
    with mock.patch("domain.jobs.dispatch.send"), transaction.atomic():
        made = [
            job_create(
                workspace_id=workspace.pk,
                kind="asset.process",
                parameters={"asset_id": 1},
                created_by_id=None,
            )
            for _ in range(count)
        ]
    publish.flush()
    return made


def _cancel(job: Job, owner: User) -> None:
    job_cancel(job_id=job.pk, actor=Actor(user=owner))
    publish.flush()


def _progress(job: Job, done: int) -> None:
    Job.objects.filter(pk=job.pk).update(progress_done=done)
    publish.publish_job_progress(job.pk, job.workspace_id)
    publish.flush()


def _last_sequence(workspace: Workspace) -> int:
    return int(event_cursor_state(workspace_id=workspace.pk)[0])


def _jobs(frames: list[str]) -> list[dict[str, Any]]:
    return [json.loads(frame)["payload"]["data"]["jobs"] for frame in frames]


def _seen(job: Job, state: str, done: int = 0) -> dict[str, Any]:
    return {"id": global_id("Job", job.pk), "state": state, "progress": {"done": done}}


async def _live_socket(token: str, workspace: Workspace, after: int | None = None) -> Socket:
    """A socket with jobs() subscribed as "s", live (jobStats, sent after it, has answered)."""
    socket = Socket()
    await socket.open(token)
    await socket.subscribe("s", JOBS, {"w": global_id("Workspace", workspace.pk), "a": after})
    await socket.subscribe("stats", STATS, {"w": global_id("Workspace", workspace.pk)})
    await socket.collect("stats", 1)
    return socket


def test_jobs_changed_while_away_come_first_each_once_as_they_are_now_then_live_ones(
    workspace: Workspace, owner: User, token: str
) -> None:
    cursor = _last_sequence(workspace)
    first, second = _queue(workspace, 2)
    _cancel(first, owner)  # two events of the first job: it is sent once, as it is now

    async def scenario() -> list[str]:
        socket = await _live_socket(token, workspace, after=cursor)
        await socket.collect("s", 2)
        await sync_to_async(_cancel)(second, owner)
        (third,) = await sync_to_async(_queue)(workspace)
        await socket.collect("s", 4)
        await sync_to_async(_progress)(third, 5)  # live only: no event
        frames = await socket.collect("s", 5)
        assert await socket.app.receive_nothing(0.3), "nothing twice"
        return frames

    reads: list[int] = []
    job_list_for = subscriptions.jobs.job_list_for

    def counted(**kwargs: Any) -> Any:
        reads.append(1)
        return job_list_for(**kwargs)

    with mock.patch.object(subscriptions.jobs, "job_list_for", counted):
        frames = run(scenario)
    # One read per event (three replayed, two live) and per progress nudge: a state change's
    # own nudge is not read again.
    assert len(reads) == 6
    third = Job.objects.exclude(pk__in=[first.pk, second.pk]).get()
    assert _jobs(frames) == [
        _seen(first, "CANCELLED"),
        _seen(second, "QUEUED"),
        _seen(second, "CANCELLED"),
        _seen(third, "QUEUED"),
        _seen(third, "QUEUED", done=5),
    ]


def test_a_state_change_whose_live_messages_were_lost_still_arrives(
    workspace: Workspace, owner: User, token: str, settings: Any
) -> None:
    """channels-redis is at-most-once: the job's event is read from Postgres once the
    subscription has heard nothing for DEPOT_WS_IDLE_CHECK_SECONDS. Before, the change was lost
    for good (jobs() listened to live nudges only)."""
    settings.DEPOT_WS_IDLE_CHECK_SECONDS = 0.2
    (job,) = _queue(workspace)

    async def scenario() -> list[str]:
        socket = await _live_socket(token, workspace)
        with mock.patch.object(publish, "publish_events"):  # the event and the nudge are lost
            await sync_to_async(_cancel)(job, owner)
        frames = await socket.collect("s", 1, wait=5)
        assert await socket.app.receive_nothing(0.5), "no duplicate"
        return frames

    assert _jobs(run(scenario)) == [_seen(job, "CANCELLED")]


def test_a_subscriber_that_fell_behind_resumes_from_its_cursor_and_misses_no_job(
    workspace: Workspace, token: str, settings: Any
) -> None:
    settings.DEPOT_WS_BACKLOG = 10

    async def scenario() -> tuple[list[str], dict[str, Any], list[str]]:
        socket = await _live_socket(token, workspace)
        # One commit: 30 events and 30 nudges reach the listener at once, past its backlog.
        made = await sync_to_async(_queue)(workspace, 30)
        frames: list[str] = []
        while True:
            (frame,) = (await socket.collect("s", len(frames) + 1, wait=5))[-1:]
            if json.loads(frame)["payload"].get("errors"):
                error = json.loads(frame)["payload"]["errors"][0]
                break
            frames.append(frame)
        ended = (await socket.collect("s", len(frames) + 2, wait=5))[-1]
        assert json.loads(ended) == {"id": "s", "type": "complete"}
        resume = error["extensions"]["resumeAfter"]
        # The burst's nudges not yet handed on still reach the socket's new listener: room
        # for them while it replays.
        settings.DEPOT_WS_BACKLOG = 500
        variables = {"w": global_id("Workspace", workspace.pk), "a": resume}
        await socket.subscribe("again", JOBS, variables)
        resumed = await socket.collect("again", len(made) - len(frames))
        assert await socket.app.receive_nothing(0.3), "no job twice"
        return frames, error, resumed

    frames, error, resumed = run(scenario)
    assert error["extensions"]["code"] == "SUBSCRIBER_TOO_SLOW"
    assert isinstance(error["extensions"]["resumeAfter"], int)
    ids = [job["id"] for job in _jobs(frames) + _jobs(resumed)]
    all_queued = Job.objects.filter(workspace=workspace).order_by("pk")
    assert ids == [global_id("Job", job.pk) for job in all_queued]
