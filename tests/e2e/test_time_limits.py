"""Time limits on a real prefork worker (Celery enforces none in a solo or threads pool): a
processing job that runs too long is stopped, ends FAILED with JOB_TIMED_OUT and its asset so
too, and the worker's one process slot takes the next job."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from domain.assets.models import Asset, AssetState, Collection
from domain.common.ids import global_id
from domain.jobs.models import Event, Job, JobState
from tests import media
from tests.e2e.conftest import Tenant
from tests.e2e.flow import COMPLETE, start_upload
from tests.e2e.test_spine import DELETE
from tests.support.client import GraphQLClient
from tests.support.processes import ManagedProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.services]

LIMITS = {
    # The web process puts them on the message, the worker's pool enforces them.
    "DEPOT_JOB_TIME_LIMIT_SECONDS": "2",
    "DEPOT_JOB_HARD_TIME_LIMIT_MARGIN_SECONDS": "2",
}


@pytest.mark.parametrize(
    "stuck",
    [
        # Stops at the soft limit (SoftTimeLimitExceeded ends the sleep): processing gives
        # the asset back as it goes, the runner ends the job.
        "sleep",
        # Ignores it: the pool kills the child at the hard limit; its lease runs out after
        # the run's deadline, and the sweeper ends the job instead of sending it again.
        "hang",
    ],
)
def test_a_job_that_runs_too_long_is_stopped_and_fails_with_job_timed_out(
    stuck: str,
    tenant: Tenant,
    start_web: Callable[..., str],
    start_worker: Callable[..., ManagedProcess],
) -> None:
    worker = start_worker(
        concurrency=1, DEPOT_FAILPOINTS=f"asset.process.after_download={stuck}:600", **LIMITS
    )
    client = GraphQLClient(start_web(**LIMITS), tenant.token)
    asset_id = start_upload(
        client, global_id("Collection", tenant.collection.pk), media.png(64, 64), "image/png"
    )
    job_id = client.data(COMPLETE, {"i": {"assetId": asset_id}})["assetUploadComplete"]["job"]["id"]
    wait_for(lambda: Job.objects.get().is_final, 60, what="the job to end", process=worker)

    job = Job.objects.get()
    assert (job.state, job.attempts) == (JobState.FAILED, 1), job.error
    assert job.error is not None
    assert job.error["code"] == "JOB_TIMED_OUT"
    asset = Asset.objects.get()
    assert asset.state == AssetState.FAILED
    assert asset.failure is not None
    assert asset.failure["code"] == "JOB_TIMED_OUT"
    types = list(Event.objects.filter(payload__jobId=job_id).values_list("type", flat=True))
    assert types == ["job.queued", "job.started", "job.failed"]
    log = worker.log_tail(400)
    assert "Soft time limit (2.0s) exceeded" in log
    assert ("Hard time limit (4.0s) exceeded" in log) == (stuck == "hang")

    # The worker's only slot is free again (a new child after a kill): the next job runs.
    empty = Collection.objects.create(workspace=tenant.workspace, name="Empty")
    client.data(DELETE, {"id": global_id("Collection", empty.pk)})
    wait_for(
        lambda: not Collection.objects.filter(pk=empty.pk).exists(),
        30,
        what="the next job",
        process=worker,
    )


def test_a_soft_limit_in_the_runners_own_code_ends_the_job_at_once(
    tenant: Tenant,
    start_web: Callable[..., str],
    start_worker: Callable[..., ManagedProcess],
) -> None:
    """Celery's own signal, landing while the runner (not the handler) runs: it escaped the
    runner, the held job went back to the queue, and the sweeper sent it again, to be
    stopped there again, and again, until its attempts ran out."""
    # The handler is done; the limit lands while the runner is about to record the end.
    worker = start_worker(concurrency=1, DEPOT_FAILPOINTS="job.before_end=sleep:600", **LIMITS)
    client = GraphQLClient(start_web(**LIMITS), tenant.token)
    asset_id = start_upload(
        client, global_id("Collection", tenant.collection.pk), media.png(64, 64), "image/png"
    )
    job_id = client.data(COMPLETE, {"i": {"assetId": asset_id}})["assetUploadComplete"]["job"]["id"]
    wait_for(lambda: Job.objects.get().is_final, 15, what="the job to end", process=worker)

    job = Job.objects.get()
    assert (job.state, job.attempts) == (JobState.FAILED, 1), job.error
    assert job.error is not None
    assert job.error["code"] == "JOB_TIMED_OUT"
    # Processed before the limit struck: the on_abandon hook leaves it READY.
    assert Asset.objects.get().state == AssetState.READY
    types = list(Event.objects.filter(payload__jobId=job_id).values_list("type", flat=True))
    assert types == ["job.queued", "job.started", "job.failed"]
    log = worker.log_tail(400)
    assert "Soft time limit (2.0s) exceeded" in log
    assert "Hard time limit" not in log
