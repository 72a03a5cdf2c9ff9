from __future__ import annotations

import random
import threading
import time
from typing import Any
from unittest import mock

import pytest
from django.db import connection, transaction

from domain.accounts.models import Workspace
from domain.jobs import events
from domain.jobs.models import Event
from domain.jobs.selectors import events_after

WRITERS = 6
EVENTS_PER_WRITER = 30


@pytest.mark.django_db(transaction=True)
def test_a_reader_that_follows_the_cursor_sees_every_event_once_in_order(
    workspace: Workspace,
) -> None:
    """Concurrent writers hold their transactions open after taking a sequence number, in
    random order; a reader polling `after cursor` must still miss nothing. With an
    auto-increment id as the cursor this fails: a lower id can commit after a higher one."""
    first = Event.objects.filter(workspace=workspace).count() + 1
    done = threading.Event()
    seen: list[int] = []
    failures: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            for n in range(EVENTS_PER_WRITER):
                with transaction.atomic():
                    events.record(workspace.pk, "test.tick", {"writer": index, "n": n})
                    time.sleep(random.random() * 0.004)
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    def reader() -> None:
        cursor = first - 1
        try:
            while True:
                finished = done.is_set()
                batch = events_after(workspace_id=workspace.pk, after=cursor)
                for event in batch:
                    seen.append(event.sequence)
                    cursor = event.sequence
                if finished and not batch:
                    return
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    reading = threading.Thread(target=reader)
    reading.start()
    writing = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for thread in writing:
        thread.start()
    for thread in writing:
        thread.join()
    done.set()
    reading.join()

    assert not failures
    total = WRITERS * EVENTS_PER_WRITER
    assert seen == list(range(first, first + total))


@pytest.mark.django_db
def test_sequences_are_per_workspace(workspace: Workspace, other_workspace: Workspace) -> None:
    with transaction.atomic():
        a = events.record(workspace.pk, "test.a", {})
        b = events.record(other_workspace.pk, "test.b", {})
        c = events.record(workspace.pk, "test.c", {})
    assert c.sequence == a.sequence + 1
    assert b.sequence == Event.objects.filter(workspace=other_workspace).count()


@pytest.mark.django_db
def test_an_event_is_published_only_after_its_transaction_commits(
    workspace: Workspace, django_capture_on_commit_callbacks: Any
) -> None:
    with mock.patch("realtime.publish.publish_events") as publish:
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            events.record(workspace.pk, "test.x", {"k": 1})
            assert publish.call_count == 0
        assert publish.call_count == 1
    [message] = publish.call_args.args[0]
    assert message["event_type"] == "test.x"
    assert message["workspace_id"] == workspace.pk


@pytest.mark.django_db(transaction=True)
def test_recording_outside_a_transaction_is_refused(workspace: Workspace) -> None:
    with pytest.raises(RuntimeError, match="inside the transaction"):
        events.record(workspace.pk, "test.y", {})
