"""realtime.publish: one sending thread per process, fed after commit, never holding a commit."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from domain.accounts.models import Workspace
from domain.jobs import events
from realtime import groups, publish


class FakeLayer:
    """Records group sends; can be held (a Redis that hangs) or made to fail (one that is down)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.released = threading.Event()
        self.released.set()
        self.entered = threading.Event()  # a send has started (and hangs, if not released)
        self.failures = 0

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.entered.set()
        # A threading.Event: the test thread releases it, this loop is the publisher's.
        while not self.released.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("redis is down")
        self.sent.append((group, message))


@pytest.fixture
def layer() -> Iterator[FakeLayer]:
    """The process's publisher, sending to a FakeLayer for the test."""
    fake = FakeLayer()
    publisher = publish.Publisher(layer=lambda: fake)
    previous = publish._publisher
    publish._publisher = publisher
    yield fake
    fake.released.set()
    publisher.stop()
    publish._publisher = previous


def _record_then_fail(workspace: Workspace) -> None:
    with transaction.atomic():
        events.record(workspace.pk, "test.rolled_back", {})
        raise RuntimeError("undo")


def _received(layer: FakeLayer, group: str) -> list[dict[str, Any]]:
    """What `group`'s subscribers got, in order, a depot.events message's events one by one (as
    realtime.consumer hands them on)."""
    received: list[dict[str, Any]] = []
    for to, message in layer.sent:
        if to == group:
            batched = message["type"] == groups.EVENTS_MESSAGE
            received += message["events"] if batched else [message]
    return received


def _event_sequences(layer: FakeLayer, workspace: Workspace) -> list[int]:
    return [m["sequence"] for m in _received(layer, groups.workspace_events(workspace.pk))]


@pytest.mark.django_db(transaction=True)
def test_commits_are_published_in_commit_order_and_a_rollback_publishes_nothing(
    workspace: Workspace, layer: FakeLayer
) -> None:
    recorded = []
    for n in range(20):
        with transaction.atomic():
            recorded.append(events.record(workspace.pk, "test.tick", {"n": n}).sequence)
        if n == 10:
            with pytest.raises(RuntimeError):
                _record_then_fail(workspace)
    assert publish.flush(5)
    assert _event_sequences(layer, workspace) == recorded
    assert not [m for _, m in layer.sent if m.get("event_type") == "test.rolled_back"]


@pytest.mark.django_db(transaction=True)
def test_a_job_event_reaches_its_three_groups_each_in_order(
    workspace: Workspace, layer: FakeLayer
) -> None:
    with transaction.atomic():
        for n in range(3):
            events.record(workspace.pk, f"job.step{n}", {}, job_id=77)
    assert publish.flush(5)
    received = _received(layer, groups.workspace_events(workspace.pk))
    assert [m["event_type"] for m in received] == ["job.step0", "job.step1", "job.step2"]
    for group in (groups.job_updates(77), groups.workspace_jobs(workspace.pk)):
        # Each commit hook queues a nudge; those sent in one go are one nudge.
        nudges = [m for to, m in layer.sent if to == group]
        assert nudges
        assert all(m["type"] == groups.JOB_MESSAGE for m in nudges)


def test_several_events_of_one_commit_go_to_their_workspace_as_one_message(
    layer: FakeLayer,
) -> None:
    def event(workspace_id: int, sequence: int, job_id: int | None) -> dict[str, Any]:
        return publish.event_message(
            workspace_id=workspace_id,
            sequence=sequence,
            type=f"t{sequence}",
            payload={},
            created_at="now",
            job_id=job_id,
        )

    # A held job's start and end (workspace 1, job 5), and another workspace's event.
    started, ended, elsewhere = event(1, 7, 5), event(1, 8, 5), event(2, 3, None)
    publish.publish_events([started, ended, elsewhere])
    assert publish.flush(5)
    # The nudge names the event it came with (a job list that hears the event skips it).
    nudge = {"type": groups.JOB_MESSAGE, "job_id": 5, "workspace_id": 1, "sequence": 7}
    assert layer.sent == [
        (groups.workspace_events(1), {"type": groups.EVENTS_MESSAGE, "events": [started, ended]}),
        (groups.workspace_events(2), elsewhere),
        # A nudge says "read the job again": once per job, not per event.
        (groups.job_updates(5), nudge),
        (groups.workspace_jobs(1), nudge),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_hanging_or_failing_redis_never_holds_up_a_commit(
    workspace: Workspace, layer: FakeLayer
) -> None:
    layer.released.clear()  # Redis hangs: every send waits
    started = time.monotonic()
    recorded = []
    for n in range(30):
        with transaction.atomic():
            recorded.append(events.record(workspace.pk, "test.tick", {"n": n}).sequence)
        if n == 0:
            assert layer.entered.wait(5)  # the first commit's send hangs
    assert time.monotonic() - started < 5  # the commits did not wait for the layer
    assert not publish.flush(0.2)  # still queued behind the hanging send
    layer.failures = 1  # the hanging send fails (Redis was down), then Redis is back
    layer.released.set()
    assert publish.flush(5)
    # What queued up meanwhile went in one go, as one message, in commit order.
    assert _event_sequences(layer, workspace) == recorded[1:]
    assert len(layer.sent) == 1
    assert publish.publisher().failed == 1


def test_what_queues_up_goes_as_one_message_per_group_and_one_nudge_per_job(
    layer: FakeLayer,
) -> None:
    def event(workspace_id: int, sequence: int, job_id: int | None = None) -> dict[str, Any]:
        return publish.event_message(
            workspace_id=workspace_id,
            sequence=sequence,
            type="t",
            payload={},
            created_at="now",
            job_id=job_id,
        )

    layer.released.clear()
    publish.publish_events([event(1, 1)])
    assert layer.entered.wait(5)  # that send hangs; the next commits queue up behind it
    publish.publish_events([event(1, 2, job_id=5)])
    publish.publish_job_progress(5, 1)
    publish.publish_events([event(2, 1), event(1, 3, job_id=5)])
    publish.publish_events([event(1, n) for n in range(4, 4 + publish.MAX_EVENTS_PER_MESSAGE)])
    layer.released.set()
    assert publish.flush(5)
    one = groups.workspace_events(1)
    assert [m["sequence"] for m in _received(layer, one)] == list(
        range(1, 4 + publish.MAX_EVENTS_PER_MESSAGE)
    )
    sizes = [len(m.get("events", [m])) for to, m in layer.sent if to == one]
    # The hanging send's one event; then the rest, at most MAX_EVENTS_PER_MESSAGE a message.
    assert sizes == [1, publish.MAX_EVENTS_PER_MESSAGE, 2]
    assert [m for to, m in layer.sent if to == groups.workspace_events(2)] == [event(2, 1)]
    # The first of the batch's nudges of job 5 stands for all: its event's (2), read after
    # the progress it covers was committed.
    nudge = {"type": groups.JOB_MESSAGE, "job_id": 5, "workspace_id": 1, "sequence": 2}
    for group in (groups.job_updates(5), groups.workspace_jobs(1)):
        assert [m for to, m in layer.sent if to == group] == [nudge]


def test_past_its_backlog_the_publisher_drops_the_oldest_messages() -> None:
    fake = FakeLayer()
    fake.released.clear()
    publisher = publish.Publisher(layer=lambda: fake, max_pending=5)
    try:
        for n in range(50):
            publisher.submit([("g", {"n": n})])
        fake.released.set()
        assert publisher.flush(5)
        got = [m["n"] for _, m in fake.sent]
        assert got == sorted(got)
        assert got[-5:] == [45, 46, 47, 48, 49]
        assert publisher.dropped == 50 - len(got)
    finally:
        publisher.stop()


def test_a_forked_child_starts_its_own_publisher() -> None:
    publisher = publish.publisher()
    publisher.submit([])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: it must not reuse the parent's (threadless) publisher
        ok = publish._publisher is None and publish.publisher() is not publisher
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == b"1"
