"""An asset's processing that ends any way but its own success or verdict never leaves the
asset PROCESSING with no job working on it (where reprocessing would never pick it again)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from domain.accounts.models import Workspace
from domain.assets import storage
from domain.assets.models import Asset, AssetState, Rendition
from domain.assets.processing import REPROCESS_ITEM_JOB
from domain.assets.services import PROCESS_JOB
from domain.jobs import runner
from domain.jobs.errors import JobCancelled
from domain.jobs.models import Event, Job, JobState
from tests import factories


def _uploaded(workspace: Workspace) -> tuple[Asset, Job]:
    asset = factories.uploaded_jpeg(workspace, key_prefix="tests/processing")
    return asset, factories.asset_job(asset, PROCESS_JOB)


def _ended(asset: Asset, job: Job) -> tuple[str, dict[str, Any] | None, str, Any]:
    asset.refresh_from_db()
    job.refresh_from_db()
    return job.state, job.error and job.error["code"], asset.state, asset.failure


def _cancelled() -> Any:
    return mock.patch("domain.jobs.context.JobContext.check_cancelled", side_effect=JobCancelled())


@pytest.mark.django_db
def test_a_cancelled_processing_fails_the_asset_with_a_code(workspace: Workspace) -> None:
    asset, job = _uploaded(workspace)
    with _cancelled():
        runner.execute(job.pk)
    assert _ended(asset, job) == (
        JobState.CANCELLED,
        None,
        AssetState.FAILED,
        {"code": "PROCESSING_CANCELLED", "message": "Processing was cancelled."},
    )
    assert Event.objects.filter(type="asset.failed").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("operation", ["open_object", "write_object"])
def test_a_failing_store_fails_the_job_and_the_asset_with_storage_error(
    workspace: Workspace, operation: str
) -> None:
    asset, job = _uploaded(workspace)
    refused = ClientError({"Error": {"Code": "SlowDown", "Message": "Reduce"}}, "GetObject")
    with mock.patch(f"domain.assets.storage.{operation}", side_effect=refused):
        runner.execute(job.pk)
    state, code, asset_state, failure = _ended(asset, job)
    assert (state, code, asset_state) == (JobState.FAILED, "STORAGE_ERROR", AssetState.FAILED)
    assert failure["code"] == "STORAGE_ERROR"
    # Retrying the job processes it once the store answers.
    Job.objects.filter(pk=job.pk).update(state=JobState.QUEUED, error=None, attempts=0)
    runner.execute(job.pk)
    assert _ended(asset, job)[2] == AssetState.READY


@pytest.mark.django_db
def test_a_cancelled_reprocessing_of_a_ready_asset_leaves_it_ready(workspace: Workspace) -> None:
    asset, job = _uploaded(workspace)
    runner.execute(job.pk)
    asset.refresh_from_db()
    assert asset.state == AssetState.READY
    renditions = sorted(asset.renditions.values_list("preset", flat=True))
    item = factories.asset_job(asset, REPROCESS_ITEM_JOB, force=True)
    with _cancelled():
        runner.execute(item.pk)
    assert _ended(asset, item)[::2] == (JobState.CANCELLED, AssetState.READY)
    assert sorted(asset.renditions.values_list("preset", flat=True)) == renditions


@pytest.mark.django_db
def test_a_job_given_up_after_lost_workers_fails_its_asset(workspace: Workspace) -> None:
    asset, job = _uploaded(workspace)
    # As after its workers died mid-processing, each time.
    Asset.objects.filter(pk=asset.pk).update(state=AssetState.PROCESSING)
    Job.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING,
        attempts=job.max_attempts,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    runner.execute(job.pk, redelivery=True)
    state, code, asset_state, failure = _ended(asset, job)
    assert (state, code, asset_state) == (JobState.FAILED, "TOO_MANY_ATTEMPTS", AssetState.FAILED)
    assert failure["code"] == "TOO_MANY_ATTEMPTS"


@pytest.mark.django_db
def test_a_checksum_mismatch_is_recorded_before_the_bytes_go(workspace: Workspace) -> None:
    """A worker that dies between the two leaves the reason; the rerun removes the bytes."""
    asset, job = _uploaded(workspace)
    Asset.objects.filter(pk=asset.pk).update(expected_sha256="0" * 64)
    died = RuntimeError("the worker died")
    with mock.patch("domain.assets.storage.delete_object", side_effect=died):
        runner.execute(job.pk)
    _, _, asset_state, failure = _ended(asset, job)
    assert asset_state == AssetState.FAILED
    assert failure["code"] == "UPLOAD_CHECKSUM_MISMATCH"
    assert storage.object_size(asset.storage_key) is not None
    Job.objects.filter(pk=job.pk).update(state=JobState.QUEUED, error=None, attempts=0)
    runner.execute(job.pk)
    assert _ended(asset, job)[1] == "UPLOAD_CHECKSUM_MISMATCH"
    assert storage.object_size(asset.storage_key) is None


def _killed_by_its_hard_limit(asset: Asset, job: Job, *, cancel: bool = False) -> None:
    """The job's run claimed with a 10 s hard deadline, the asset PROCESSING (a cancel asked
    for meanwhile, if `cancel`), the worker's child killed there (its lease ran out just
    after); then the sweeper's end of it."""
    start = timezone.now()
    with mock.patch("django.utils.timezone.now", return_value=start):
        assert runner.claim(job.pk, deadline=start + timedelta(seconds=10)) is not None
    Asset.objects.filter(pk=asset.pk).update(state=AssetState.PROCESSING)
    Job.objects.filter(pk=job.pk).update(
        lease_expires_at=start + timedelta(seconds=12), cancel_requested=cancel
    )
    with mock.patch("django.utils.timezone.now", return_value=start + timedelta(seconds=13)):
        assert runner.end_timed_out(job.pk)


@pytest.mark.django_db
def test_a_reprocessing_killed_by_its_hard_time_limit_leaves_a_ready_asset_ready(
    workspace: Workspace, settings: Any
) -> None:
    """The on_abandon hook failed it JOB_TIMED_OUT, as if it had never been processed, though
    its original and renditions were intact (the soft limit's path kept it READY)."""
    settings.DEPOT_JOB_QUICK_SECONDS = 0
    asset, job = _uploaded(workspace)
    runner.execute(job.pk)
    asset.refresh_from_db()
    assert asset.state == AssetState.READY
    renditions = sorted(asset.renditions.values_list("preset", "storage_key"))
    item = factories.asset_job(asset, REPROCESS_ITEM_JOB, force=True)
    _killed_by_its_hard_limit(asset, item)
    assert _ended(asset, item) == (JobState.FAILED, "JOB_TIMED_OUT", AssetState.READY, None)
    assert sorted(asset.renditions.values_list("preset", "storage_key")) == renditions
    assert Event.objects.filter(type="asset.ready").count() == 2
    assert not Event.objects.filter(type="asset.failed").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("retried", [False, True], ids=["uploaded", "failed before"])
def test_a_processing_killed_by_its_hard_time_limit_fails_an_unprocessed_asset(
    workspace: Workspace, settings: Any, retried: bool
) -> None:
    settings.DEPOT_JOB_QUICK_SECONDS = 0
    asset, job = _uploaded(workspace)
    if retried:  # processed once, then failed: a retry does not make it READY
        runner.execute(job.pk)
        failure = {"code": "KIND_NOT_ALLOWED", "message": "Not here."}
        Asset.objects.filter(pk=asset.pk).update(state=AssetState.FAILED, failure=failure)
        job = factories.asset_job(asset, REPROCESS_ITEM_JOB, force=True)
    _killed_by_its_hard_limit(asset, job)
    state, code, asset_state, failure = _ended(asset, job)
    assert (state, code, asset_state) == (JobState.FAILED, "JOB_TIMED_OUT", AssetState.FAILED)
    assert failure["code"] == "JOB_TIMED_OUT"


@pytest.mark.django_db
def test_a_processing_killed_by_its_hard_time_limit_with_a_cancel_pending_is_cancelled(
    workspace: Workspace, settings: Any
) -> None:
    settings.DEPOT_JOB_QUICK_SECONDS = 0
    asset, job = _uploaded(workspace)
    _killed_by_its_hard_limit(asset, job, cancel=True)
    assert _ended(asset, job) == (
        JobState.CANCELLED,
        None,
        AssetState.FAILED,
        {"code": "PROCESSING_CANCELLED", "message": "Processing was cancelled."},
    )


@pytest.mark.django_db
def test_a_processing_whose_worker_was_lost_with_a_cancel_pending_is_cancelled(
    workspace: Workspace, settings: Any
) -> None:
    """The next claim ended the job CANCELLED but left the asset PROCESSING for good (no
    reprocessing picks a PROCESSING asset)."""
    settings.DEPOT_JOB_QUICK_SECONDS = 0
    asset, job = _uploaded(workspace)
    start = timezone.now()
    with mock.patch("django.utils.timezone.now", return_value=start):
        assert runner.claim(job.pk, deadline=None) is not None
    Asset.objects.filter(pk=asset.pk).update(state=AssetState.PROCESSING)
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)  # then the worker is lost
    later = start + timedelta(seconds=settings.DEPOT_JOB_LEASE_SECONDS + 1)
    with mock.patch("django.utils.timezone.now", return_value=later):
        assert runner.claim(job.pk, deadline=None) is None  # the redelivery's claim
    assert _ended(asset, job) == (
        JobState.CANCELLED,
        None,
        AssetState.FAILED,
        {"code": "PROCESSING_CANCELLED", "message": "Processing was cancelled."},
    )


class _Killed(BaseException):
    """The worker's child killed there (Celery's hard time limit): none of the run's own
    handling runs after it (it is no Exception), and its job is left RUNNING."""


def _stopped_at(point: str, stop: BaseException) -> Any:
    def failpoint(name: str) -> None:
        if name == point:
            raise stop

    return mock.patch("domain.assets.processing.failpoint", side_effect=failpoint)


def _renditions(asset: Asset) -> dict[str, str]:
    return dict(Rendition.objects.filter(asset=asset).values_list("preset", "storage_key"))


@pytest.mark.django_db
@pytest.mark.parametrize("store", ["s3", "local"])
@pytest.mark.parametrize("point", ["after_rendition", "after_finish"])
@pytest.mark.parametrize("stop", ["killed", "soft limit"])
def test_a_reprocessing_stopped_anywhere_leaves_no_rendition_naming_a_missing_object(
    workspace: Workspace,
    settings: Any,
    request: pytest.FixtureRequest,
    store: str,
    point: str,
    stop: str,
) -> None:
    """A reprocessing whose presets dropped some renditions removed their objects before their
    rows: killed (or stopped by its soft limit) in between, the asset was READY again with rows
    naming objects no longer in the store (broken links)."""
    settings.DEPOT_JOB_QUICK_SECONDS = 0
    if store == "local":
        request.getfixturevalue("media_root")
    asset, job = _uploaded(workspace)
    runner.execute(job.pk)
    before = _renditions(asset)
    assert len(before) == 3
    # One preset now: the other two renditions are stale.
    kept = {"name": "thumb-256", "maxSide": 256, "format": "jpeg", "quality": 85}
    Workspace.objects.filter(pk=workspace.pk).update(media_settings={"presets": [kept]})
    item = factories.asset_job(asset, REPROCESS_ITEM_JOB, force=True)
    start = timezone.now()
    with mock.patch("django.utils.timezone.now", return_value=start):
        if stop == "killed":
            with _stopped_at(f"asset.process.{point}", _Killed()), pytest.raises(_Killed):
                runner.execute(item.pk, time_limit=10)
        else:
            with _stopped_at(f"asset.process.{point}", SoftTimeLimitExceeded()):
                runner.execute(item.pk, time_limit=10)
    if stop == "killed":
        # The sweeper, once the lease has run out past the run's deadline.
        later = start + timedelta(seconds=settings.DEPOT_JOB_LEASE_SECONDS + 1)
        with mock.patch("django.utils.timezone.now", return_value=later):
            assert runner.end_timed_out(item.pk)
    assert _ended(asset, item) == (JobState.FAILED, "JOB_TIMED_OUT", AssetState.READY, None)
    after = _renditions(asset)
    missing = {preset: key for preset, key in after.items() if storage.object_size(key) is None}
    assert missing == {}
    if point == "after_rendition":  # nothing given up: the renditions it had, all there
        assert after == before
    else:  # READY with the new presets' renditions: the stale ones are gone with their rows
        assert after == {"thumb-256": before["thumb-256"]}
