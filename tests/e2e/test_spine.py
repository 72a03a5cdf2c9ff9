"""The spine end to end: uvicorn and a separate celery worker on Postgres, Redis (or
RabbitMQ) and SeaweedFS; the test is a client with an API token."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from domain.assets import storage
from domain.assets.media import DEFAULT_PRESETS
from domain.assets.models import Asset, AssetState, Collection, Rendition
from domain.common.ids import global_id
from domain.jobs.dispatch import RUN_JOB_TASK
from domain.jobs.models import Event, Job, JobState
from tests import media
from tests.e2e.conftest import BROKERS, Tenant
from tests.e2e.flow import COMPLETE, EVENTS, download, read_asset, start_upload, upload_and_watch
from tests.support.client import GraphQLClient
from tests.support.processes import ManagedProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.services]


@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_an_upload_is_processed_by_a_worker_and_watched_live(
    broker_url: str,
    tenant: Tenant,
    start_web: Callable[..., str],
    start_worker: Callable[..., ManagedProcess],
) -> None:
    # A pause after the download keeps the job RUNNING long enough to be watched mid-way.
    start_worker(
        CELERY_BROKER_URL=broker_url, DEPOT_FAILPOINTS="asset.process.after_download=sleep:1.5"
    )
    client = GraphQLClient(start_web(CELERY_BROKER_URL=broker_url), tenant.token)
    content = media.jpeg(1600, 1200)
    watched = asyncio.run(
        upload_and_watch(
            client,
            global_id("Workspace", tenant.workspace.pk),
            global_id("Collection", tenant.collection.pk),
            content,
        )
    )

    assert watched.job_events == ["job.queued", "job.started", "job.succeeded"]
    states = [update["state"] for update in watched.job_updates]
    assert states[0] in {"QUEUED", "RUNNING"}
    assert states[-1] == "SUCCEEDED"
    running = [u for u in watched.job_updates if u["state"] == "RUNNING"]
    assert running, watched.job_updates
    assert any(u["progress"]["stage"] == "downloading" for u in running)
    assert (
        watched.job_updates[-1]["progress"]["done"] == watched.job_updates[-1]["progress"]["total"]
    )

    asset = read_asset(client, watched.asset_id)
    assert asset["state"] == "READY"
    assert asset["sha256"] == hashlib.sha256(content).hexdigest()
    assert asset["contentType"] == "image/jpeg"
    assert (asset["metadata"]["width"], asset["metadata"]["height"]) == (1600, 1200)
    [thumbnail] = [r for r in asset["renditions"] if r["preset"] == "thumb-256"]
    assert (thumbnail["width"], thumbnail["height"]) == (256, 192)
    thumb = download(thumbnail["url"])
    assert thumb[:3] == b"\xff\xd8\xff"
    assert len(thumb) == thumbnail["size"]


def test_a_job_whose_worker_is_killed_finishes_once_on_another_worker(
    tenant: Tenant,
    start_web: Callable[..., str],
    start_worker: Callable[..., ManagedProcess],
) -> None:
    # The first worker stops right after storing the renditions, before the job can finish:
    # the worst moment to die, since a side effect is already done.
    doomed = start_worker(beat=False, DEPOT_FAILPOINTS="asset.process.after_rendition=sleep:120")
    client = GraphQLClient(start_web(), tenant.token)
    asset_id = start_upload(
        client, global_id("Collection", tenant.collection.pk), media.png(900, 700), "image/png"
    )
    job_id = client.data(COMPLETE, {"i": {"assetId": asset_id}})["assetUploadComplete"]["job"]["id"]
    asset = Asset.objects.get()
    wait_for(
        lambda: Rendition.objects.filter(asset=asset).count() == len(DEFAULT_PRESETS),
        30,
        what="the renditions",
        process=doomed,
    )
    doomed.kill(signal.SIGKILL)
    doomed.wait(10)
    assert Job.objects.get().state == JobState.RUNNING

    start_worker(beat=True)
    wait_for(lambda: Job.objects.get().state != JobState.RUNNING, 60, what="the takeover")

    job = Job.objects.get()
    assert job.state == JobState.SUCCEEDED
    assert job.attempts == 2
    asset.refresh_from_db()
    assert asset.state == AssetState.READY
    presets = list(Rendition.objects.filter(asset=asset).values_list("preset", flat=True))
    assert sorted(presets) == sorted(preset.name for preset in DEFAULT_PRESETS)
    prefix = f"{asset.workspace_id}/{asset.pk}/renditions"
    assert storage.list_keys(prefix) == sorted(
        f"{prefix}/{preset.name}.{preset.format}" for preset in DEFAULT_PRESETS
    )
    types = list(Event.objects.filter(payload__jobId=job_id).values_list("type", flat=True))
    assert types.count("job.succeeded") == 1
    assert types.count("job.started") == 2
    assert Event.objects.filter(type="asset.ready").count() == 1


DELETE = "mutation($id: ID!) { collectionDelete(input: {id: $id}) { job { id } errors { code } } }"


def test_a_job_whose_worker_dies_before_claiming_it_runs_once_on_another_worker(
    tenant: Tenant,
    start_web: Callable[..., str],
    start_worker: Callable[..., ManagedProcess],
) -> None:
    # Redis hands a message over once (no acknowledgement emulation, project/settings.py): a
    # worker that dies holding it takes it along, and the sweeper sends the job again.
    doomed = start_worker(beat=False, DEPOT_FAILPOINTS="job.before_claim=sleep:120")
    client = GraphQLClient(start_web(), tenant.token)
    collection = global_id("Collection", tenant.collection.pk)
    job_id = client.data(DELETE, {"id": collection})["collectionDelete"]["job"]["id"]
    wait_for(
        lambda: f"{RUN_JOB_TASK}[" in doomed.log_tail(200),
        30,
        what="the worker taking the job's message",
        process=doomed,
    )
    doomed.kill(signal.SIGKILL)
    doomed.wait(10)
    job = Job.objects.get()
    assert (job.state, job.attempts) == (JobState.QUEUED, 0)

    _the_redelivery_runs_once(start_worker, tenant, job_id)


def test_a_job_whose_worker_dies_while_holding_it_runs_once_on_another_worker(
    tenant: Tenant,
    start_web: Callable[..., str],
    start_worker: Callable[..., ManagedProcess],
) -> None:
    # The worker holds the job (a lock on its row, domain/jobs/quick.py) for as long as it
    # likes here, and dies in it: Postgres ends its transaction, the job is QUEUED again with
    # no attempt counted, and the sweeper's redelivery is claimed on another worker.
    doomed = start_worker(
        beat=False, DEPOT_JOB_QUICK_SECONDS="600", DEPOT_FAILPOINTS="job.before_handler=sleep:120"
    )
    client = GraphQLClient(start_web(), tenant.token)
    collection = global_id("Collection", tenant.collection.pk)
    job_id = client.data(DELETE, {"id": collection})["collectionDelete"]["job"]["id"]
    wait_for(_a_worker_holds_a_job, 30, what="the worker holding the job", process=doomed)
    assert Job.objects.get().state == JobState.QUEUED
    doomed.kill(signal.SIGKILL)
    doomed.wait(10)
    wait_for(lambda: not _a_worker_holds_a_job(), 30, what="Postgres ending the held transaction")
    job = Job.objects.get()
    assert (job.state, job.attempts, job.started_at) == (JobState.QUEUED, 0, None)

    _the_redelivery_runs_once(start_worker, tenant, job_id)


def _the_redelivery_runs_once(
    start_worker: Callable[..., ManagedProcess], tenant: Tenant, job_id: str
) -> None:
    """A new worker with beat: the sweeper sends the collection's deletion again, and it runs
    once, its first counted attempt."""
    start_worker(beat=True)
    wait_for(lambda: Job.objects.get().state == JobState.SUCCEEDED, 60, what="the re-dispatch")
    assert Job.objects.get().attempts == 1
    assert not Collection.objects.filter(pk=tenant.collection.pk).exists()
    types = list(Event.objects.filter(payload__jobId=job_id).values_list("type", flat=True))
    assert (types.count("job.started"), types.count("job.succeeded")) == (1, 1)


def _a_worker_holds_a_job() -> bool:
    """Whether a session sits in a held job's transaction (domain/jobs/quick.py: its last query
    is the hold). Asked of pg_stat_activity, not by locking rows: a probe that locked the job's
    row (FOR UPDATE SKIP LOCKED) at the moment the worker came to hold it made the worker skip
    the row and claim the job instead (RUNNING, not held: a flaky run, 2026-12-06)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'idle in transaction' "
            "AND query LIKE 'BEGIN; SET LOCAL idle_in_transaction_session_timeout%%'"
        )
        return bool(cursor.fetchone()[0])


def test_a_subscriber_that_reconnects_with_its_cursor_misses_nothing(
    tenant: Tenant,
    start_web: Callable[..., str],
    start_worker: Callable[..., ManagedProcess],
) -> None:
    client = GraphQLClient(start_web(), tenant.token)
    workspace = global_id("Workspace", tenant.workspace.pk)
    create = """mutation($i: CollectionCreateInput!) {
      collectionCreate(input: $i) { errors { code } }
    }"""

    def produce(prefix: str, count: int) -> None:
        for n in range(count):
            result = client.data(create, {"i": {"workspaceId": workspace, "name": f"{prefix}-{n}"}})
            assert result["collectionCreate"]["errors"] == []

    async def receive(ws: Any, sub: str, count: int) -> list[int]:
        sequences = []
        for _ in range(count):
            message = await ws.receive(sub, 30)
            assert message["type"] == "next", message
            sequences.append(message["payload"]["data"]["events"]["sequence"])
        return sequences

    async def scenario() -> list[int]:
        async with client.websocket() as ws:
            now = await asyncio.to_thread(client.event_sequence, workspace)
            sub = await ws.subscribe(EVENTS, {"w": workspace, "after": now})
            await asyncio.to_thread(produce, "before", 5)
            first = await receive(ws, sub, 5)
        # Disconnected: events keep being committed, some before and some during the resume.
        await asyncio.to_thread(produce, "while-away", 20)
        producer = threading.Thread(target=produce, args=("during-resume", 20))
        producer.start()
        async with client.websocket() as ws:
            sub = await ws.subscribe(EVENTS, {"w": workspace, "after": first[-1]})
            second = await receive(ws, sub, 40)
        producer.join()
        return first + second

    sequences = asyncio.run(scenario())
    assert sequences == list(range(sequences[0], sequences[0] + 45))
