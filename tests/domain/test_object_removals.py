"""No object outlives the rows naming it, and none a row names is deleted: objects whose rows a
change drops are deleted after its commit, and whatever a stop (a kill, a crash) or a refusing
store leaves is deleted by beat's maintenance, on the real stores (SeaweedFS, local files)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone

from domain.accounts.actor import Actor
from domain.accounts.models import User, Workspace
from domain.assets import deletion, multipart, storage
from domain.assets.models import Asset, AssetState, Rendition
from domain.assets.processing import REPROCESS_ITEM_JOB
from domain.assets.renditions_on_demand import RENDITION_JOB, RenditionSpec
from domain.assets.services import PROCESS_JOB
from domain.jobs import runner
from project.celery import app
from tasks.schedule import beat_schedule
from tests import factories, media

KEPT_PRESET = {"name": "thumb-256", "maxSide": 256, "format": "jpeg", "quality": 85}


class _Killed(BaseException):
    """The worker's child killed there: none of the run's own handling runs after it."""


@pytest.fixture(params=["s3", "local"])
def store(request: pytest.FixtureRequest, settings: Any) -> str:
    settings.DEPOT_JOB_QUICK_SECONDS = 0
    if request.param == "local":
        request.getfixturevalue("media_root")
    return str(request.param)


def _ready(workspace: Workspace) -> Asset:
    asset = factories.uploaded_jpeg(workspace, key_prefix="tests/removals")
    runner.execute(factories.asset_job(asset, PROCESS_JOB).pk)
    asset.refresh_from_db()
    assert asset.state == AssetState.READY
    return asset


def _renditions(asset: Asset) -> dict[str, str]:
    return dict(Rendition.objects.filter(asset=asset).values_list("preset", "storage_key"))


def _presets(workspace: Workspace, *presets: dict[str, Any]) -> None:
    settings = {"presets": list(presets)} if presets else {}
    Workspace.objects.filter(pk=workspace.pk).update(media_settings=settings)


def _stored(keys: Any) -> set[str]:
    return {key for key in keys if storage.object_size(key) is not None}


def _maintenance(at: datetime | None = None) -> None:
    """Every periodic task of beat's schedule but the job ledger's sweeper, as beat runs them
    (at `at`, if given)."""
    import tasks.jobs  # noqa: F401 (registers the tasks)

    now = at or timezone.now()
    with (
        mock.patch("django.utils.timezone.now", return_value=now),
        # The test's transaction is no connection to close.
        mock.patch("tasks.jobs.close_old_connections"),
    ):
        for entry in beat_schedule().values():
            if entry["task"] != "depot.sweep_jobs":
                app.tasks[entry["task"]]()


@contextmanager
def _store_refusing() -> Iterator[None]:
    """The store answers every deletion with a refusal (a bucket policy, a full disk...)."""
    if storage.is_s3():
        client = storage.internal_s3_client()

        def refusing(**kwargs: Any) -> Any:
            objects = kwargs["Delete"]["Objects"]
            return {
                "Errors": [
                    {"Key": o["Key"], "Code": "AccessDenied", "Message": "Access Denied"}
                    for o in objects
                ]
            }

        with mock.patch.object(client, "delete_objects", refusing):
            yield
        return
    denied = PermissionError(13, "Permission denied")
    with mock.patch("django.core.files.storage.FileSystemStorage.delete", side_effect=denied):
        yield


@pytest.mark.django_db
@pytest.mark.parametrize("stop", ["killed", "crash"])
def test_a_reprocessing_stopped_after_its_commit_leaves_the_stale_objects_to_the_sweep(
    workspace: Workspace, settings: Any, store: str, stop: str
) -> None:
    """Stopped between the commit that drops the stale renditions' rows and the deletion of
    their objects, a reprocessing left the objects in the bucket for ever: no row named them,
    and an asset's deletion deletes what its rows name."""
    asset = _ready(workspace)
    before = _renditions(asset)
    stale = {key for preset, key in before.items() if preset != "thumb-256"}
    assert len(stale) == 2
    _presets(workspace, KEPT_PRESET)
    item = factories.asset_job(asset, REPROCESS_ITEM_JOB, force=True)
    if stop == "killed":
        with (
            mock.patch("domain.assets.processing.failpoint", side_effect=_failpoint_killing),
            pytest.raises(_Killed),
        ):
            runner.execute(item.pk)
    else:  # the crash's own handling runs: the asset is READY already
        settings.DEPOT_FAILPOINTS = "asset.process.after_finish=raise"
        runner.execute(item.pk)
        settings.DEPOT_FAILPOINTS = ""
    asset.refresh_from_db()
    assert asset.state == AssetState.READY
    assert _renditions(asset) == {"thumb-256": before["thumb-256"]}
    assert _stored(stale) == stale  # left, named by no row
    _maintenance()
    assert _stored(stale) == set()
    assert _stored(before.values()) == {before["thumb-256"]}


def _failpoint_killing(name: str) -> None:
    if name == "asset.process.after_finish":
        raise _Killed()


@pytest.mark.django_db
def test_a_store_that_refuses_the_removal_is_asked_again_later(
    workspace: Workspace, store: str
) -> None:
    asset = _ready(workspace)
    before = _renditions(asset)
    stale = {key for preset, key in before.items() if preset != "thumb-256"}
    _presets(workspace, KEPT_PRESET)
    item = factories.asset_job(asset, REPROCESS_ITEM_JOB, force=True)
    start = timezone.now()
    with _store_refusing():
        runner.execute(item.pk)
        asset.refresh_from_db()
        assert asset.state == AssetState.READY  # only the store keeps more than it should
        assert _stored(stale) == stale
        # Refused again a minute later: the next try waits twice as long.
        _maintenance(at=start + timedelta(seconds=61))
        assert _stored(stale) == stale
    _maintenance(at=start + timedelta(seconds=61 + 60))  # not due yet
    assert _stored(stale) == stale
    _maintenance(at=start + timedelta(seconds=61 + 121))
    assert _stored(stale) == set()
    assert _stored(before.values()) == {before["thumb-256"]}


@pytest.mark.django_db
def test_a_removal_after_its_commit_spares_a_key_written_again_since(
    workspace: Workspace, store: str
) -> None:
    """A reprocessing that dropped a preset deletes its object after its commit; if, meanwhile,
    the preset came back and another run stored the rendition at the same (fixed) key with
    its row, the late deletion removed the object that row names: a broken link."""
    asset = _ready(workspace)
    before = _renditions(asset)
    _presets(workspace, KEPT_PRESET)
    first = factories.asset_job(asset, REPROCESS_ITEM_JOB, force=True)

    def meanwhile(name: str) -> None:
        if name == "asset.process.after_finish":
            _presets(workspace)  # the default presets again
            runner.execute(factories.asset_job(asset, REPROCESS_ITEM_JOB, force=True).pk)

    with mock.patch("domain.assets.processing.failpoint", side_effect=meanwhile):
        runner.execute(first.pk)
    assert _renditions(asset) == before
    assert _stored(before.values()) == set(before.values())
    _maintenance(at=timezone.now() + timedelta(hours=2))
    assert _stored(before.values()) == set(before.values())


@pytest.mark.django_db
def test_an_aborted_upload_stopped_after_its_commit_leaves_its_object_to_the_sweep(
    workspace: Workspace, owner: User, store: str
) -> None:
    content = media.jpeg(64, 64)
    started = multipart.asset_multipart_upload_start(
        collection=factories.collection(workspace),
        filename="a.jpg",
        content_type="image/jpeg",
        size=len(content),
        title=None,
        actor=Actor(user=owner),
    )
    key = started.asset.storage_key
    # What a completion cut short leaves: the parts joined, the asset still awaiting them.
    storage.write_object(key, io.BytesIO(content), "image/jpeg")
    # Killed at the store's deletion, after the commit that deleted the asset's row.
    with (
        mock.patch("domain.assets.storage.delete_object", side_effect=_Killed()),
        mock.patch("domain.assets.storage.delete_objects", side_effect=_Killed()),
        pytest.raises(_Killed),
    ):
        multipart.asset_multipart_upload_abort(asset=started.asset, actor=Actor(user=owner))
    assert not Asset.objects.filter(pk=started.asset.pk).exists()
    assert _stored([key]) == {key}
    _maintenance()
    assert _stored([key]) == set()


@pytest.mark.django_db
def test_a_rendition_stopped_before_its_row_leaves_its_object_to_the_sweep(
    workspace: Workspace, store: str
) -> None:
    """An on-demand rendition whose worker died between storing the object and recording its
    row, and whose asset was then deleted, left the object for ever."""
    asset = _ready(workspace)
    spec = RenditionSpec(width=64, format="webp")
    key = spec.key(asset)
    job = factories.asset_job(asset, RENDITION_JOB, width=spec.width, format=spec.format)
    with (
        mock.patch("domain.assets.renditions_on_demand._record", side_effect=_Killed()),
        pytest.raises(_Killed),
    ):
        runner.execute(job.pk)
    assert _stored([key]) == {key}
    named = set(_renditions(asset).values()) | {asset.storage_key}
    deletion._delete_assets(asset.workspace_id, [asset.pk])
    assert _stored(named) == set()
    assert _stored([key]) == {key}  # no row named it
    _maintenance()  # a worker may still be storing it
    assert _stored([key]) == {key}
    _maintenance(at=timezone.now() + timedelta(hours=1, minutes=1))
    assert _stored([key]) == set()
