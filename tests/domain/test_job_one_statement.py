"""A job's creation, claim and finish as one statement each (Postgres; the claim and the
finish outside any transaction, the creation in or out of one).

The tests in test_jobs.py run inside pytest-django's transaction, so they take the general way;
these run with real commits, so the runner takes the one-statement way, and check that it writes
and publishes exactly what the general way does, falls back for the unusual cases, and keeps
sequences in commit order.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from domain.accounts.actor import Actor
from domain.accounts.models import Workspace
from domain.common.errors import Forbidden, InvalidState, NotFound
from domain.common.ids import global_id
from domain.jobs import events, registry, runner, transitions
from domain.jobs.context import JobContext
from domain.jobs.errors import JobFailed
from domain.jobs.models import Event, EventCounter, Job, JobState, Lane
from domain.jobs.services import job_cancel, job_create, job_retry

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'", reason="the one-statement way is Postgres only"
    ),
]


@registry.register("test.one_statement.ok", lane=Lane.INTERACTIVE)
def _ok(ctx: JobContext) -> dict[str, Any]:
    return {"fine": True}


@registry.register("test.one_statement.fails", lane=Lane.INTERACTIVE)
def _fails(ctx: JobContext) -> None:
    raise JobFailed("Not today.", code="NOT_TODAY")


def _job(workspace: Workspace, kind: str = "test.one_statement.ok") -> Job:
    with mock.patch("domain.jobs.dispatch.send"):
        return job_create(workspace_id=workspace.pk, kind=kind, parameters={}, created_by_id=None)


def _events(workspace: Workspace) -> list[Event]:
    return list(Event.objects.filter(workspace=workspace).order_by("sequence"))


def _run_generally(job_id: int) -> None:
    """The same job through the general way (inside a transaction), for comparison."""
    with transaction.atomic():
        claimed = runner.claim(job_id)
    assert claimed is not None
    job, token = claimed
    with transaction.atomic():
        assert runner._finish(job, token, JobState.SUCCEEDED, result={"fine": True})


def test_claim_and_finish_take_one_statement_each(workspace: Workspace, settings: Any) -> None:
    settings.DEPOT_JOB_QUICK_SECONDS = 0  # claimed at once (held runs: test_job_quick.py)
    job = _job(workspace)
    with (
        mock.patch.object(
            transitions, "claim_in_one_statement", wraps=transitions.claim_in_one_statement
        ) as claim_one,
        mock.patch.object(
            transitions, "finish_in_one_statement", wraps=transitions.finish_in_one_statement
        ) as finish_one,
        mock.patch.object(runner, "_claim_in_transaction") as general,
    ):
        runner.execute(job.pk)
    assert claim_one.call_count == 1
    assert finish_one.call_count == 1
    general.assert_not_called()


def test_it_writes_and_publishes_what_the_general_way_does(workspace: Workspace) -> None:
    fast, general = _job(workspace), _job(workspace)
    published: list[dict[str, Any]] = []
    with mock.patch("realtime.publish.publish_events", side_effect=lambda ms: published.extend(ms)):
        runner.execute(fast.pk)
        _run_generally(general.pk)
    rows = {job.pk: Job.objects.get(pk=job.pk) for job in (fast, general)}
    for name in ("state", "result", "error", "attempts", "lease_token", "lease_expires_at"):
        assert getattr(rows[fast.pk], name) == getattr(rows[general.pk], name), name
    assert rows[fast.pk].finished_at is not None
    stored = [
        (e.type, e.payload)
        for e in _events(workspace)
        if e.type.startswith("job.") and e.type != "job.queued"
    ]
    by_job: dict[int, list[tuple[str, Any]]] = {fast.pk: [], general.pk: []}
    for message in published:
        if message["event_type"] != "job.queued":
            by_job[message["job_id"]].append((message["event_type"], message["payload"]))

    def without_id(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        return [(t, {k: v for k, v in p.items() if k != "jobId"}) for t, p in items]

    # Stored and published alike, and the same both ways (but for the job's id).
    assert without_id(by_job[fast.pk]) == without_id(by_job[general.pk])
    assert [t for t, _ in by_job[fast.pk]] == ["job.started", "job.succeeded"]

    def canonical(items: list[tuple[str, Any]]) -> list[str]:
        return sorted(f"{t} {json.dumps(p, sort_keys=True)}" for t, p in items)

    assert canonical(stored) == canonical(by_job[fast.pk] + by_job[general.pk])
    # Sequences: contiguous, and what was published is what was stored.
    sequences = [e.sequence for e in _events(workspace)]
    assert sequences == list(range(1, len(sequences) + 1))
    ran = [e.sequence for e in _events(workspace) if e.type in ("job.started", "job.succeeded")]
    assert sorted(m["sequence"] for m in published) == ran


def test_the_claimed_job_is_the_row_as_the_orm_reads_it(workspace: Workspace) -> None:
    """The claim builds its Job from the statement's row with Django's converters (JSON comes
    back as text), both ways."""
    with mock.patch("domain.jobs.dispatch.send"):
        fast, general = (
            job_create(
                workspace_id=workspace.pk,
                kind="test.one_statement.ok",
                parameters={"size": [1, 2], "name": "ü"},
                created_by_id=None,
            )
            for _ in range(2)
        )
    claimed = transitions.claim_in_one_statement(fast.pk, None)
    with transaction.atomic():
        claimed_generally = runner.claim(general.pk)
    assert claimed is not None
    assert claimed_generally is not None
    for job, _token in (claimed, claimed_generally):
        read = Job.objects.get(pk=job.pk)
        fields = [field.attname for field in Job._meta.concrete_fields]
        assert {f: getattr(job, f) for f in fields} == {f: getattr(read, f) for f in fields}
        assert job.parameters == {"size": [1, 2], "name": "ü"}
        assert job._state.adding is False


def _created_generally(workspace: Workspace) -> Job:
    with (
        mock.patch.object(
            transitions, "one_statement_in_any_transaction_possible", return_value=False
        ),
        mock.patch("domain.jobs.dispatch.send"),
    ):
        return job_create(
            workspace_id=workspace.pk,
            kind="test.one_statement.ok",
            parameters={},
            created_by_id=None,
        )


def test_a_job_is_created_with_its_event_in_one_committed_statement(
    workspace: Workspace, django_assert_num_queries: Any
) -> None:
    general = _created_generally(workspace)
    before = _events(workspace)[-1].sequence
    order: list[str] = []
    with (
        mock.patch("domain.jobs.dispatch.send", side_effect=lambda *a: order.append("dispatch")),
        mock.patch(
            "realtime.publish.publish_events",
            side_effect=lambda ms: order.extend(f"{m['event_type']} {m['sequence']}" for m in ms),
        ),
        django_assert_num_queries(1),  # no BEGIN or COMMIT either: one autocommit statement
    ):
        fast = job_create(
            workspace_id=workspace.pk,
            kind="test.one_statement.ok",
            parameters={"a": 1},
            created_by_id=None,
        )
    assert order == ["dispatch", f"job.queued {before + 1}"]  # the broker first, as generally
    row = Job.objects.get(pk=fast.pk)
    assert (row.state, row.kind, row.lane, row.parameters) == (
        JobState.QUEUED,
        "test.one_statement.ok",
        Lane.INTERACTIVE.value,
        {"a": 1},
    )
    assert row.created_at == fast.created_at
    assert row.dispatched_at == fast.dispatched_at
    queued = {e.payload.get("jobId"): e for e in _events(workspace)}
    for job in (general, fast):  # the same payload both ways, the id Relay's global id
        event = queued[global_id("Job", job.pk)]
        assert (event.type, event.payload) == (
            "job.queued",
            {"jobId": global_id("Job", job.pk), "kind": "test.one_statement.ok", "state": "QUEUED"},
        )
    assert [e.sequence for e in _events(workspace)] == list(range(1, before + 2))


def test_a_job_created_in_a_transaction_waits_for_its_commit(workspace: Workspace) -> None:
    before = [(e.type, e.sequence) for e in _events(workspace)]
    sent: list[int] = []
    with mock.patch(
        "domain.jobs.dispatch.send", side_effect=lambda job_id, lane, kind: sent.append(job_id)
    ):
        with transaction.atomic():
            kept = _job(workspace)
            assert sent == []
        assert sent == [kept.pk]

        @transaction.atomic
        def start_then_fail() -> None:
            _job(workspace)
            raise RuntimeError("the change that started it failed")

        with pytest.raises(RuntimeError):
            start_then_fail()
    assert sent == [kept.pk]
    assert list(Job.objects.filter(workspace=workspace)) == [kept]
    after = [(e.type, e.sequence) for e in _events(workspace)]
    assert after == [*before, ("job.queued", len(before) + 1)]


def test_a_failure_keeps_its_code(workspace: Workspace) -> None:
    job = _job(workspace, kind="test.one_statement.fails")
    runner.execute(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error == {"code": "NOT_TODAY", "message": "Not today."}
    last = _events(workspace)[-1]
    assert (last.type, last.payload["error"]["code"]) == ("job.failed", "NOT_TODAY")


def test_a_retry_is_one_statement_and_writes_and_publishes_what_the_general_way_does(
    workspace: Workspace, owner: Any
) -> None:
    failed = [_job(workspace, kind="test.one_statement.fails") for _ in range(2)]
    for job in failed:
        runner.execute(job.pk)
    actor = Actor(user=owner)
    actor.permissions  # noqa: B018 (read before counting, as a request's admission does)
    published: list[dict[str, Any]] = []
    with (
        mock.patch("domain.jobs.dispatch.send") as send,
        mock.patch("realtime.publish.publish_events", side_effect=published.extend),
        mock.patch.object(
            transitions, "retry_in_one_statement", wraps=transitions.retry_in_one_statement
        ) as one,
        CaptureQueriesContext(connection) as queries,
    ):
        fast = job_retry(job_id=failed[0].pk, actor=actor)
    assert one.call_count == 1
    assert len(queries) == 1  # no BEGIN, locking read, event statement or COMMIT of their own
    with (
        mock.patch("domain.jobs.dispatch.send"),
        mock.patch("realtime.publish.publish_events"),
        mock.patch.object(
            transitions, "one_statement_in_any_transaction_possible", return_value=False
        ),
    ):
        general = job_retry(job_id=failed[1].pk, actor=actor)
    every = [field.attname for field in Job._meta.concrete_fields]
    for job in (fast, general):  # what the service returns is the row as it now is
        read = Job.objects.get(pk=job.pk)
        assert {f: getattr(job, f) for f in every} == {f: getattr(read, f) for f in every}
    reset = ["state", "error", "result", "cancel_requested", "attempts", "progress_done"]
    reset += ["progress_total", "progress_stage", "finished_at", "lease_token", "lease_expires_at"]
    assert {f: getattr(fast, f) for f in reset} == {f: getattr(general, f) for f in reset}
    assert fast.state == JobState.QUEUED
    send.assert_called_once_with(fast.pk, fast.lane, fast.kind)
    retried = [e for e in _events(workspace) if e.type == "job.retried"]
    assert [e.payload for e in retried] == [
        {"jobId": global_id("Job", job.pk), "kind": job.kind, "state": "QUEUED"}
        for job in (fast, general)
    ]
    assert [(m["event_type"], m["sequence"], m["payload"]) for m in published] == [
        ("job.retried", retried[0].sequence, retried[0].payload)
    ]


def test_a_job_that_cannot_be_retried_writes_nothing(workspace: Workspace, owner: Any) -> None:
    job = _job(workspace)
    before = (_events(workspace), Job.objects.get(pk=job.pk).updated_at)
    with pytest.raises(InvalidState, match="Only a failed or cancelled job"):
        job_retry(job_id=job.pk, actor=Actor(user=owner))
    assert (_events(workspace), Job.objects.get(pk=job.pk).updated_at) == before


def test_another_workspaces_job_reads_as_missing_and_a_viewer_may_not_change_one(
    workspace: Workspace, other_workspace: Workspace, owner: Any, viewer_user: Any
) -> None:
    theirs, ours = _job(other_workspace), _job(workspace)
    for job in (theirs, ours):
        runner.execute(job.pk)  # succeeded: cancel refuses, but first comes who may ask
    Job.objects.filter(pk__in=[theirs.pk, ours.pk]).update(state=JobState.FAILED)
    rows_before = list(Job.objects.order_by("pk").values())
    events_before = list(Event.objects.order_by("pk").values())
    for change in (job_retry, job_cancel):
        with pytest.raises(NotFound):
            change(job_id=theirs.pk, actor=Actor(user=owner))
        with pytest.raises(Forbidden):
            change(job_id=ours.pk, actor=Actor(user=viewer_user))
    assert list(Job.objects.order_by("pk").values()) == rows_before
    assert list(Event.objects.order_by("pk").values()) == events_before


def test_a_cancel_is_one_statement_and_writes_and_publishes_what_the_general_way_does(
    workspace: Workspace, owner: Any
) -> None:
    """A queued job is cancelled at once, a running one gets its cancel requested; both ways
    leave the same row and event; a second cancel of the running one writes nothing."""
    actor = Actor(user=owner)
    actor.permissions  # noqa: B018 (read before counting, as a request's admission does)
    jobs = {way: (_job(workspace), _job(workspace)) for way in ("fast", "general")}
    for _queued, running in jobs.values():
        assert runner.claim(running.pk) is not None
    published: list[dict[str, Any]] = []
    results = {}
    with (
        mock.patch("realtime.publish.publish_events", side_effect=published.extend),
        CaptureQueriesContext(connection) as queries,
    ):
        results["fast"] = [job_cancel(job_id=job.pk, actor=actor) for job in jobs["fast"]]
    assert len(queries) == 2  # a statement each
    with (
        mock.patch("realtime.publish.publish_events"),
        mock.patch.object(
            transitions, "one_statement_in_any_transaction_possible", return_value=False
        ),
    ):
        results["general"] = [job_cancel(job_id=job.pk, actor=actor) for job in jobs["general"]]
    every = [field.attname for field in Job._meta.concrete_fields]
    changed = ["state", "cancel_requested", "attempts", "progress_done"]
    for way, (queued, running) in results.items():
        for job in (queued, running):  # what the service returns is the row as it now is
            read = Job.objects.get(pk=job.pk)
            assert {f: getattr(job, f) for f in every} == {f: getattr(read, f) for f in every}
        assert (queued.state, queued.finished_at is not None) == (JobState.CANCELLED, True)
        assert (running.state, running.cancel_requested) == (JobState.RUNNING, True), way
    for fast, general in zip(results["fast"], results["general"], strict=True):
        assert {f: getattr(fast, f) for f in changed} == {f: getattr(general, f) for f in changed}
    ends = [
        (e.type, e.payload["state"])
        for e in _events(workspace)
        if e.type in ("job.cancelled", "job.cancel_requested")
    ]
    assert ends == [("job.cancelled", "CANCELLED"), ("job.cancel_requested", "RUNNING")] * 2
    assert [m["event_type"] for m in published] == ["job.cancelled", "job.cancel_requested"]
    events_before = len(_events(workspace))
    again = job_cancel(job_id=results["fast"][1].pk, actor=actor)  # already requested: no change
    assert again.cancel_requested
    assert len(_events(workspace)) == events_before
    with pytest.raises(InvalidState, match="already cancelled"):
        job_cancel(job_id=results["fast"][0].pk, actor=actor)


def test_nothing_is_written_when_the_job_is_not_ours(workspace: Workspace) -> None:
    job = _job(workspace)
    runner.execute(job.pk)
    before = len(_events(workspace))
    assert runner.claim(job.pk) is None  # finished: falls back, which finds nothing to do
    assert runner._finish(job, "not-our-token", JobState.FAILED) is False
    assert len(_events(workspace)) == before
    assert Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED


def test_unusual_claims_fall_back_to_the_general_way(workspace: Workspace) -> None:
    expired = timezone.now() - timedelta(seconds=1)
    cancelled, worn_out = _job(workspace), _job(workspace)
    Job.objects.filter(pk=cancelled.pk).update(
        state=JobState.RUNNING, cancel_requested=True, lease_expires_at=expired
    )
    Job.objects.filter(pk=worn_out.pk).update(
        state=JobState.RUNNING, attempts=worn_out.max_attempts, lease_expires_at=expired
    )
    runner.execute(cancelled.pk)
    runner.execute(worn_out.pk)
    assert Job.objects.get(pk=cancelled.pk).state == JobState.CANCELLED
    worn = Job.objects.get(pk=worn_out.pk)
    assert (worn.state, worn.error and worn.error["code"]) == (JobState.FAILED, "TOO_MANY_ATTEMPTS")
    assert "job.started" not in [e.type for e in _events(workspace)]


def test_an_expired_lease_is_taken_over_in_one_statement(workspace: Workspace) -> None:
    job = _job(workspace)
    claimed = runner.claim(job.pk)
    assert claimed is not None
    _, old_token = claimed
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    runner.execute(job.pk)
    job.refresh_from_db()
    assert (job.state, job.attempts) == (JobState.SUCCEEDED, 2)
    assert runner._finish(job, old_token, JobState.FAILED) is False
    started = [e.payload["attempt"] for e in _events(workspace) if e.type == "job.started"]
    assert started == [1, 2]


def test_a_workspace_without_its_counter_row_gets_one(workspace: Workspace) -> None:
    job = _job(workspace)
    last = EventCounter.objects.get(workspace=workspace).last_sequence
    EventCounter.objects.filter(workspace=workspace).delete()
    Event.objects.filter(workspace=workspace).delete()
    runner.execute(job.pk)
    assert [(e.type, e.sequence) for e in _events(workspace)] == [
        ("job.started", 1),
        ("job.succeeded", 2),
    ]
    assert last >= 1


def test_a_claim_waits_for_an_open_writer_of_its_workspace(workspace: Workspace) -> None:
    """Commit order: the claim's event cannot take a sequence below one a transaction still
    open holds, nor commit before it."""
    job = _job(workspace)
    recorded = threading.Event()
    release = threading.Event()

    def writer() -> None:
        try:
            with transaction.atomic():
                events.record(workspace.pk, "test.held", {})
                recorded.set()
                release.wait(5)
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    assert recorded.wait(5)
    done = threading.Event()

    def claimer() -> None:
        try:
            runner.claim(job.pk)
            done.set()
        finally:
            connection.close()

    second = threading.Thread(target=claimer)
    second.start()
    assert not done.wait(0.5)  # blocked on the counter row
    release.set()
    thread.join(5)
    second.join(5)
    assert done.is_set()
    assert [e.type for e in _events(workspace)][-2:] == ["test.held", "job.started"]


@pytest.mark.parametrize("held", [True, False], ids=["held", "claimed"])
def test_a_jobs_last_event_is_sent_by_its_own_thread_before_execute_returns(
    workspace: Workspace, settings: Any, held: bool
) -> None:
    """The finish publishes from the job's thread (no hand-off to the publisher thread, which
    a subscriber waiting for the end would wait for). A claimed job's job.started goes through
    the publisher thread, unless the finish finds it still queued and sends it first; a held
    job's (domain/jobs/quick.py) goes with the end, in one depot.events message."""
    from realtime import publish

    if not held:
        settings.DEPOT_JOB_QUICK_SECONDS = 0

    if not publish.RedisBatchSend.fits(publish.get_channel_layer()):
        pytest.skip("a job's thread sends itself to a Redis channel layer only")
    job = _job(workspace)
    publish.flush()
    senders: list[tuple[str, str]] = []
    real_send = publish.Publisher._send

    def send(self: publish.Publisher, layer: Any, batch: list[publish.Send]) -> None:
        for _, message in batch:
            for event in message.get("events", [message]):  # depot.events: several in one
                if event.get("job_id") == job.pk and "event_type" in event:
                    senders.append((event["event_type"], threading.current_thread().name))
        real_send(self, layer, batch)

    with mock.patch.object(publish.Publisher, "_send", send):
        runner.execute(job.pk)
        finished = list(senders)  # before any flush
        publish.flush()
    me = threading.current_thread().name
    assert ("job.succeeded", me) in finished
    assert [event for event, _ in senders] == ["job.started", "job.succeeded"]
    if held:
        assert senders == [("job.started", me), ("job.succeeded", me)]
