"""assetRenditionRequest: a rendition asked for through GraphQL is made once, by one
asset.rendition job, and stored; asking again returns it.

Jobs run in-process (runner.execute); dispatch to the broker is patched out.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from PIL import Image

from domain.accounts.actor import Actor
from domain.accounts.models import User, Workspace
from domain.assets import renditions_on_demand, storage
from domain.assets.models import Asset, AssetState, Collection, Rendition
from domain.common.ids import global_id
from domain.jobs import runner
from domain.jobs.models import Event, Job, JobState, Lane
from domain.jobs.services import job_create
from tests import factories, media
from tests.conftest import GQL
from tests.support.disk import files_under, full_disk

REQUEST = """mutation($i: AssetRenditionRequestInput!) {
  assetRenditionRequest(input: $i) {
    rendition { id preset format width height size onDemand url }
    job { id kind lane state }
    errors { code message path }
  }
}"""


@pytest.fixture
def collection(workspace: Workspace) -> Collection:
    return Collection.objects.create(workspace=workspace, name="Photos")


@pytest.fixture(autouse=True)
def no_broker() -> Iterator[None]:
    with mock.patch("domain.jobs.dispatch.send"):
        yield


def _ready_image(collection: Collection, content: bytes | None = None, **fields: Any) -> Asset:
    """A processed image, its original in storage (the job reads it from there)."""
    content = content or media.jpeg()
    asset = factories.asset(collection, metadata={"kind": "image"}, size=len(content), **fields)
    storage.write_object(asset.storage_key, io.BytesIO(content), "image/jpeg")
    return asset


def _request(
    gql: GQL, token: str, asset: Asset | str, width: int = 320, format: str = "WEBP"
) -> dict[str, Any]:
    asset_id = asset if isinstance(asset, str) else global_id("Asset", asset.pk)
    variables = {"i": {"assetId": asset_id, "width": width, "format": format}}
    return dict(gql(REQUEST, variables, token)["data"]["assetRenditionRequest"])


def _on_demand_keys(asset: Asset) -> list[str]:
    return storage.list_keys(f"{asset.workspace_id}/{asset.pk}/renditions/on-demand")


@pytest.mark.django_db
def test_a_rendition_is_made_once_and_then_returned(
    gql: GQL, token: str, collection: Collection
) -> None:
    asset = _ready_image(collection, media.jpeg(640, 480))
    first = _request(gql, token, asset)
    assert first["errors"] == []
    assert first["rendition"] is None
    assert (first["job"]["kind"], first["job"]["lane"]) == ("asset.rendition", "INTERACTIVE")
    second = _request(gql, token, asset)
    assert second["job"]["id"] == first["job"]["id"]
    assert Job.objects.count() == 1

    job = Job.objects.get()
    runner.execute(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.result is not None
    assert job.result["preset"] == "w320.webp"

    made = _request(gql, token, asset)
    assert made["errors"] == []
    assert made["job"] is None
    rendition = made["rendition"]
    assert (rendition["preset"], rendition["format"]) == ("w320.webp", "webp")
    assert (rendition["width"], rendition["height"]) == (320, 240)
    assert rendition["onDemand"] is True
    assert rendition["url"]
    assert Job.objects.count() == 1
    assert Rendition.objects.count() == 1
    [key] = _on_demand_keys(asset)
    with storage.open_object(key) as stored:
        data = stored.read()
    assert len(data) == rendition["size"]
    assert Image.open(io.BytesIO(data)).format == "WEBP"
    assert Event.objects.filter(type="asset.rendition_created").count() == 1
    # The job run once more (a worker died and it was taken over) makes nothing new.
    again = renditions_on_demand.make_rendition(mock.Mock(parameters=job.parameters))
    assert again is not None
    assert again["alreadyMade"] is True
    assert Rendition.objects.count() == 1
    assert len(_on_demand_keys(asset)) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("size", "width", "expected"),
    [((300, 600), 256, (256, 512)), ((640, 480), 2560, (640, 480))],
    ids=["portrait", "never-enlarged"],
)
def test_the_width_is_kept_and_never_enlarged(
    gql: GQL,
    token: str,
    collection: Collection,
    size: tuple[int, int],
    width: int,
    expected: tuple[int, int],
) -> None:
    asset = _ready_image(collection, media.jpeg(*size))
    runner.execute(_job_pk(_request(gql, token, asset, width=width, format="PNG")))
    rendition = Rendition.objects.get()
    assert (rendition.width, rendition.height) == expected
    assert rendition.format == "png"


def _job_pk(answer: dict[str, Any]) -> int:
    """The queued job a request answered with."""
    assert answer["errors"] == [], answer
    assert answer["job"] is not None, answer
    return Job.objects.get(kind="asset.rendition", state=JobState.QUEUED).pk


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_start_one_job(owner: User, workspace: Workspace) -> None:
    collection = factories.collection(workspace)
    asset = _ready_image(collection)
    barrier = threading.Barrier(2)
    jobs: list[int] = []
    failures: list[BaseException] = []

    def ask() -> None:
        try:
            barrier.wait(timeout=10)
            requested = renditions_on_demand.asset_rendition_request(
                asset=asset, width=640, format="jpeg", actor=Actor(user=owner)
            )
            assert requested.job is not None
            jobs.append(requested.job.pk)
        except BaseException as error:  # reported below, in the test's thread
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    assert len(jobs) == 2
    assert jobs[0] == jobs[1]
    assert Job.objects.filter(kind="asset.rendition").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "state", [AssetState.AWAITING_UPLOAD, AssetState.PROCESSING, AssetState.FAILED]
)
def test_an_asset_that_is_not_ready_is_refused(
    gql: GQL, token: str, collection: Collection, state: AssetState
) -> None:
    asset = factories.asset(collection, state=state)
    answer = _request(gql, token, asset)
    assert answer["errors"][0]["code"] == "ASSET_NOT_READY"
    assert answer["errors"][0]["path"] == ["assetId"]
    assert not Job.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content_type", "kind"),
    [("audio/mpeg", "audio"), ("text/plain", "text"), ("image/svg+xml", "image")],
)
def test_a_file_without_a_picture_is_refused(
    gql: GQL, token: str, collection: Collection, content_type: str, kind: str
) -> None:
    asset = factories.asset(
        collection,
        content_type=content_type,
        declared_content_type=content_type,
        metadata={"kind": kind},
    )
    answer = _request(gql, token, asset)
    assert answer["errors"][0]["code"] == "RENDITION_NOT_SUPPORTED"
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_only_the_listed_widths_are_made(gql: GQL, token: str, collection: Collection) -> None:
    asset = _ready_image(collection)
    answer = _request(gql, token, asset, width=321)
    assert answer["errors"][0]["code"] == "INVALID_INPUT"
    assert answer["errors"][0]["path"] == ["width"]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_another_workspaces_asset_reads_like_a_missing_one(
    gql: GQL, token: str, other_workspace: Workspace
) -> None:
    theirs = _ready_image(factories.collection(other_workspace))
    foreign = _request(gql, token, theirs)
    assert foreign == _request(gql, token, global_id("Asset", 987_654))
    assert foreign["errors"][0]["code"] == "NOT_FOUND"
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_read_only_token_is_refused(
    gql: GQL, make_token: Callable[..., str], collection: Collection
) -> None:
    asset = _ready_image(collection)
    answer = _request(gql, make_token("read"), asset)
    assert answer["errors"][0]["code"] == "FORBIDDEN"
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_failed_rendition_is_tried_again_when_asked_again(
    gql: GQL, token: str, collection: Collection
) -> None:
    content = media.jpeg()
    asset = _ready_image(collection, content)
    storage.delete_object(asset.storage_key)
    failed = Job.objects.get(pk=_job_pk(_request(gql, token, asset)))
    runner.execute(failed.pk)
    failed.refresh_from_db()
    assert failed.state == JobState.FAILED
    assert failed.error is not None
    assert failed.error["code"] == "UPLOAD_NOT_FOUND"

    storage.write_object(asset.storage_key, io.BytesIO(content), "image/jpeg")
    retried = _request(gql, token, asset)
    assert retried["job"]["id"] != global_id("Job", failed.pk)
    runner.execute(Job.objects.get(state=JobState.QUEUED).pk)
    assert _request(gql, token, asset)["rendition"]["preset"] == "w320.webp"
    failed.refresh_from_db()
    assert failed.state == JobState.FAILED  # the ledger keeps the first attempt as it ended


@pytest.mark.django_db
def test_processing_again_keeps_on_demand_renditions(
    gql: GQL, token: str, collection: Collection
) -> None:
    asset = _ready_image(collection)
    runner.execute(_job_pk(_request(gql, token, asset)))
    [key] = _on_demand_keys(asset)
    reprocessing = job_create(
        workspace_id=asset.workspace_id,
        kind="asset.process",
        parameters={"asset_id": asset.pk, "force": True},
        created_by_id=None,
    )
    assert reprocessing.lane == Lane.INTERACTIVE
    runner.execute(reprocessing.pk)
    reprocessing.refresh_from_db()
    assert reprocessing.state == JobState.SUCCEEDED, reprocessing.error
    presets = set(Rendition.objects.values_list("preset", flat=True))
    assert presets == {"w320.webp", "thumb-256", "preview-1024", "preview-1024-webp"}
    assert _on_demand_keys(asset) == [key]
    assert Rendition.objects.get(preset="w320.webp").on_demand


@pytest.mark.django_db
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_a_worker_whose_disk_is_full_fails_the_rendition_with_its_code_and_keeps_the_original(
    gql: GQL, token: str, collection: Collection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It failed with INTERNAL_ERROR, as any unexpected error, where processing says
    WORKER_DISK_FULL (the job's own disk, not the asset, is at fault: asking again works)."""
    content = media.jpeg(640, 480)
    asset = _ready_image(collection, content)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the worker's TMPDIR
    job_pk = _job_pk(_request(gql, token, asset))
    # Every write to /dev/full fails with ENOSPC, as on a worker whose disk has filled up.
    with mock.patch.object(renditions_on_demand, "scratch_path", return_value=Path("/dev/full")):
        runner.execute(job_pk)
    job = Job.objects.get(pk=job_pk)
    assert (job.state, job.error and job.error["code"]) == (JobState.FAILED, "WORKER_DISK_FULL")
    _nothing_lost(asset, content)
    assert list(scratch.iterdir()) == []  # the job's scratch directory is gone

    # Once there is room, asking again makes it.
    runner.execute(_job_pk(_request(gql, token, asset)))
    assert _request(gql, token, asset)["rendition"]["preset"] == "w320.webp"


@pytest.mark.django_db
def test_a_full_local_store_fails_the_rendition_with_its_code_and_leaves_no_partial_file(
    gql: GQL, token: str, collection: Collection, media_root: Path
) -> None:
    """Embedded mode: the store is the worker's disk too."""
    root = media_root
    content = media.jpeg(640, 480)
    asset = _ready_image(collection, content)
    job_pk = _job_pk(_request(gql, token, asset))
    with full_disk():
        runner.execute(job_pk)
    job = Job.objects.get(pk=job_pk)
    assert (job.state, job.error and job.error["code"]) == (JobState.FAILED, "WORKER_DISK_FULL")
    _nothing_lost(asset, content)
    assert files_under(root) == [root / asset.storage_key]


def _nothing_lost(asset: Asset, content: bytes) -> None:
    """The asset is as it was, its original intact, and no rendition was kept."""
    asset.refresh_from_db()
    assert (asset.state, asset.failure) == (AssetState.READY, None)
    with storage.open_object(asset.storage_key) as stored:
        assert stored.read() == content
    assert not Rendition.objects.filter(asset=asset).exists()
    assert _on_demand_keys(asset) == []
