"""Checksums announced at assetUploadStart, and content dedup within a workspace.

Real object store (SeaweedFS in the suite); the processing job runs in-process.
"""

from __future__ import annotations

import hashlib
from typing import Any
from unittest import mock

import httpx
import pytest

from domain.accounts.models import Workspace
from domain.assets import storage
from domain.assets.models import Asset, AssetState, Collection, Rendition
from domain.common.ids import global_id
from domain.jobs.models import Event, Job, JobState
from tests import media
from tests.conftest import GQL
from tests.schema.test_uploads import ASSET, _post, complete, upload

START = """mutation($i: AssetUploadStartInput!) {
  assetUploadStart(input: $i) {
    asset { id state } upload { url fields } duplicateOf { id } errors { code message path }
  }
}"""


@pytest.fixture
def collection(workspace: Workspace) -> Collection:
    return Collection.objects.create(workspace=workspace, name="Photos")


def _start(gql: GQL, token: str, collection: Collection, content: bytes, **extra: Any) -> Any:
    variables = {
        "collectionId": global_id("Collection", collection.pk),
        "filename": "photo.jpg",
        "contentType": "image/jpeg",
        "size": len(content),
        **extra,
    }
    return gql(START, {"i": variables}, token)["data"]["assetUploadStart"]


def _uploaded(
    gql: GQL, token: str, collection: Collection, content: bytes, captured: Any, **extra: Any
) -> str:
    asset_id, target = upload(gql, token, collection, content, **extra)
    _post(target, content, "image/jpeg")
    complete(gql, token, asset_id, captured)
    return asset_id


@pytest.mark.django_db
def test_an_upload_with_its_checksum_is_processed(
    gql: GQL, token: str, collection: Collection, django_capture_on_commit_callbacks: Any
) -> None:
    content = media.jpeg()
    sha256 = hashlib.sha256(content).hexdigest()
    asset_id = _uploaded(
        gql, token, collection, content, django_capture_on_commit_callbacks, sha256=sha256.upper()
    )
    asset = Asset.objects.get()
    assert (asset.state, asset.expected_sha256, asset.sha256) == (AssetState.READY, sha256, sha256)
    assert gql(ASSET, {"id": asset_id}, token)["data"]["asset"]["state"] == "READY"


@pytest.mark.django_db
def test_bytes_that_do_not_match_the_checksum_fail_and_are_removed(
    gql: GQL, token: str, collection: Collection, django_capture_on_commit_callbacks: Any
) -> None:
    content = media.jpeg()
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    asset_id = _uploaded(
        gql, token, collection, content, django_capture_on_commit_callbacks, sha256=wrong
    )
    asset = gql(ASSET, {"id": asset_id}, token)["data"]["asset"]
    assert asset["state"] == "FAILED"
    assert asset["failure"]["code"] == "UPLOAD_CHECKSUM_MISMATCH"
    job = Job.objects.get()
    assert (job.state, job.error["code"]) == (JobState.FAILED, "UPLOAD_CHECKSUM_MISMATCH")  # type: ignore[index]
    stored = Asset.objects.get()
    assert storage.object_size(stored.storage_key) is None
    assert stored.sha256 == ""
    assert not Rendition.objects.exists()
    assert not Event.objects.filter(type="asset.ready").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("sha256", ["abc", "g" * 64, "a" * 63, ""])
def test_a_malformed_checksum_is_refused_and_creates_nothing(
    gql: GQL, token: str, collection: Collection, sha256: str
) -> None:
    result = _start(gql, token, collection, b"x" * 10, sha256=sha256)
    assert result["errors"][0]["code"] == "INVALID_UPLOAD"
    assert result["errors"][0]["path"] == ["sha256"]
    assert result["asset"] is None
    assert not Asset.objects.exists()
    assert not Event.objects.filter(type="asset.created").exists()


@pytest.mark.django_db
def test_link_returns_the_ready_asset_of_the_same_bytes_and_creates_nothing(
    gql: GQL, token: str, collection: Collection, django_capture_on_commit_callbacks: Any
) -> None:
    content = media.jpeg()
    first = _uploaded(gql, token, collection, content, django_capture_on_commit_callbacks)
    events_before = Event.objects.count()

    sha256 = hashlib.sha256(content).hexdigest()
    result = _start(gql, token, collection, content, sha256=sha256, onDuplicate="LINK")

    assert result["errors"] == []
    assert result["asset"] == {"id": first, "state": "READY"}
    assert result["duplicateOf"] == {"id": first}
    assert result["upload"] is None
    assert Asset.objects.count() == 1
    assert Event.objects.count() == events_before


@pytest.mark.django_db
def test_link_without_a_duplicate_starts_an_upload(
    gql: GQL, token: str, collection: Collection
) -> None:
    content = media.jpeg()
    sha256 = hashlib.sha256(content).hexdigest()
    result = _start(gql, token, collection, content, sha256=sha256, onDuplicate="LINK")
    assert result["errors"] == []
    assert result["duplicateOf"] is None
    assert result["upload"] is not None
    assert Asset.objects.get().state == AssetState.AWAITING_UPLOAD


@pytest.mark.django_db
def test_a_duplicate_in_another_workspace_is_not_reported(
    gql: GQL,
    token: str,
    collection: Collection,
    other_workspace: Workspace,
) -> None:
    content = media.jpeg()
    sha256 = hashlib.sha256(content).hexdigest()
    theirs = Collection.objects.create(workspace=other_workspace, name="Theirs")
    Asset.objects.create(
        workspace=other_workspace,
        collection=theirs,
        title="theirs",
        original_filename="x.jpg",
        storage_key="theirs/1",
        declared_content_type="image/jpeg",
        size=len(content),
        sha256=sha256,
        state=AssetState.READY,
    )
    result = _start(gql, token, collection, content, sha256=sha256, onDuplicate="LINK")
    assert result["duplicateOf"] is None
    assert result["upload"] is not None


@pytest.mark.django_db
def test_keep_both_makes_a_second_asset_whose_job_copies_instead_of_processing(
    gql: GQL, token: str, collection: Collection, django_capture_on_commit_callbacks: Any
) -> None:
    content = media.jpeg(1200, 900)
    first_id = _uploaded(gql, token, collection, content, django_capture_on_commit_callbacks)
    sha256 = hashlib.sha256(content).hexdigest()
    started = _start(gql, token, collection, content, sha256=sha256)
    assert started["duplicateOf"] == {"id": first_id}
    second_id = started["asset"]["id"]
    assert second_id != first_id
    _post(started["upload"], content, "image/jpeg")
    with mock.patch("domain.assets.media.analyse", side_effect=AssertionError("processed twice")):
        complete(gql, token, second_id, django_capture_on_commit_callbacks)

    first = gql(ASSET, {"id": first_id}, token)["data"]["asset"]
    copy = gql(ASSET, {"id": second_id}, token)["data"]["asset"]
    assert copy["state"] == "READY"
    assert copy["contentType"] == first["contentType"]
    assert copy["metadata"] == {**first["metadata"], "duplicateOf": first_id}
    assert _by_preset(copy) == _by_preset(first)
    second = Asset.objects.exclude(sha256="").order_by("pk").last()
    assert second is not None
    prefix = f"{second.workspace_id}/{second.pk}/renditions"
    keys = Rendition.objects.filter(asset=second).values_list("storage_key", flat=True)
    assert sorted(keys) == storage.list_keys(prefix)
    assert len(keys) == 3
    thumb = next(r for r in copy["renditions"] if r["preset"] == "thumb-256")
    original = next(r for r in first["renditions"] if r["preset"] == "thumb-256")
    assert (
        httpx.get(thumb["url"], timeout=30).content
        == httpx.get(original["url"], timeout=30).content
    )


def _by_preset(asset: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {r["preset"]: (r["width"], r["height"], r["size"]) for r in asset["renditions"]}


@pytest.mark.django_db
def test_the_job_finds_a_duplicate_even_when_the_client_sent_no_checksum(
    gql: GQL, token: str, collection: Collection, django_capture_on_commit_callbacks: Any
) -> None:
    content = media.jpeg()
    first_id = _uploaded(gql, token, collection, content, django_capture_on_commit_callbacks)
    with mock.patch("domain.assets.media.analyse", side_effect=AssertionError("processed twice")):
        second_id = _uploaded(gql, token, collection, content, django_capture_on_commit_callbacks)
    copy = gql(ASSET, {"id": second_id}, token)["data"]["asset"]
    assert copy["state"] == "READY"
    assert copy["metadata"]["duplicateOf"] == first_id
    assert len(copy["renditions"]) == 3
