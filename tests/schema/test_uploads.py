"""The upload flow through GraphQL, against the real object store (SeaweedFS in the suite).

The job that assetUploadComplete queues is run in-process here (runner.execute); the same flow
through a separate worker process is in tests/e2e.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest

from domain.accounts.actor import Actor
from domain.accounts.models import User, Workspace
from domain.assets import deletion, storage
from domain.assets.models import Asset, AssetState, Collection, Rendition
from domain.common.ids import global_id
from domain.jobs import runner
from domain.jobs.models import Job, JobState
from tests import media
from tests.conftest import GQL

START = """mutation($i: AssetUploadStartInput!) {
  assetUploadStart(input: $i) {
    asset { id state } upload { url fields expiresAt } errors { code message path }
  }
}"""
COMPLETE = """mutation($i: AssetUploadCompleteInput!) {
  assetUploadComplete(input: $i) {
    asset { id state } job { id state kind } errors { code message }
  }
}"""
ASSET = """query($id: ID!) {
  asset(id: $id) {
    state contentType sha256 size metadata failure { code message } downloadUrl
    renditions { preset format width height size url }
  }
}"""


@pytest.fixture
def collection(workspace: Workspace) -> Collection:
    return Collection.objects.create(workspace=workspace, name="Photos")


def _post(upload: dict[str, Any], content: bytes, content_type: str) -> httpx.Response:
    url = upload["url"]
    if url.startswith("http://testserver"):
        pytest.skip("local-storage uploads are covered by the embedded-mode test")
    return httpx.post(
        url, data=upload["fields"], files={"file": ("f", content, content_type)}, timeout=30
    )


def upload(
    gql: GQL,
    token: str,
    collection: Collection,
    content: bytes,
    *,
    content_type: str = "image/jpeg",
    announced: int | None = None,
    sha256: str | None = None,
    filename: str | None = None,
) -> tuple[str, dict[str, Any]]:
    extension = {"image/jpeg": "jpg"}.get(content_type, content_type.rsplit("/", 1)[-1])
    started = gql(
        START,
        {
            "i": {
                "collectionId": global_id("Collection", collection.pk),
                "filename": filename or f"photo.{extension}",
                "contentType": content_type,
                "size": announced if announced is not None else len(content),
                **({"sha256": sha256} if sha256 else {}),
            }
        },
        token,
    )["data"]["assetUploadStart"]
    assert started["errors"] == []
    return started["asset"]["id"], started["upload"]


def complete(gql: GQL, token: str, asset_id: str, captured: Any) -> dict[str, Any]:
    with mock.patch("domain.jobs.dispatch.send") as send, captured(execute=True):
        result = gql(COMPLETE, {"i": {"assetId": asset_id}}, token)["data"]["assetUploadComplete"]
    if result["job"] is not None:
        job = Job.objects.get(pk=send.call_args.args[0])
        runner.execute(job.pk)
    return dict(result)


@pytest.mark.django_db
def test_an_image_is_uploaded_to_s3_processed_and_readable(
    gql: GQL, token: str, collection: Collection, django_capture_on_commit_callbacks: Any
) -> None:
    content = media.jpeg(1200, 800)
    asset_id, target = upload(gql, token, collection, content)
    assert target["fields"]["Content-Type"] == "image/jpeg"
    assert _post(target, content, "image/jpeg").status_code in (200, 201, 204)

    result = complete(gql, token, asset_id, django_capture_on_commit_callbacks)
    assert result["errors"] == []
    assert result["job"]["kind"] == "asset.process"

    asset = gql(ASSET, {"id": asset_id}, token)["data"]["asset"]
    assert asset["state"] == "READY"
    assert asset["contentType"] == "image/jpeg"
    import hashlib

    assert asset["sha256"] == hashlib.sha256(content).hexdigest()
    assert (asset["metadata"]["width"], asset["metadata"]["height"]) == (1200, 800)
    renditions = {rendition["preset"]: rendition for rendition in asset["renditions"]}
    assert sorted(renditions) == ["preview-1024", "preview-1024-webp", "thumb-256"]
    thumbnail = renditions["thumb-256"]
    assert (thumbnail["format"], thumbnail["width"], thumbnail["height"]) == ("jpeg", 256, 171)
    assert (renditions["preview-1024-webp"]["format"], renditions["preview-1024"]["width"]) == (
        "webp",
        1024,
    )
    downloaded = httpx.get(thumbnail["url"], timeout=30)
    assert downloaded.status_code == 200
    assert downloaded.content[:3] == b"\xff\xd8\xff"
    assert len(downloaded.content) == thumbnail["size"]
    # Renditions are pictures Depot made: shown inline, as what they are.
    assert _served(downloaded) == ("image/jpeg", "inline")
    original = httpx.get(asset["downloadUrl"], timeout=30)
    assert original.content == content
    assert _served(original) == ("image/jpeg", 'inline; filename="photo.jpg"')


@pytest.mark.django_db
def test_completing_twice_returns_the_same_job(
    gql: GQL, token: str, collection: Collection, django_capture_on_commit_callbacks: Any
) -> None:
    content = media.png()
    asset_id, target = upload(gql, token, collection, content, content_type="image/png")
    _post(target, content, "image/png")
    first = complete(gql, token, asset_id, django_capture_on_commit_callbacks)
    again = gql(COMPLETE, {"i": {"assetId": asset_id}}, token)["data"]["assetUploadComplete"]
    assert again["job"]["id"] == first["job"]["id"]
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_the_exif_orientation_is_applied(
    gql: GQL, token: str, collection: Collection, django_capture_on_commit_callbacks: Any
) -> None:
    content = media.jpeg(600, 300, orientation=6)
    asset_id, target = upload(gql, token, collection, content)
    _post(target, content, "image/jpeg")
    complete(gql, token, asset_id, django_capture_on_commit_callbacks)
    asset = gql(ASSET, {"id": asset_id}, token)["data"]["asset"]
    assert (asset["metadata"]["width"], asset["metadata"]["height"]) == (300, 600)
    [thumbnail] = [r for r in asset["renditions"] if r["preset"] == "thumb-256"]
    assert (thumbnail["width"], thumbnail["height"]) == (128, 256)


@pytest.mark.django_db
def test_completing_before_uploading_is_refused_and_changes_nothing(
    gql: GQL, token: str, collection: Collection
) -> None:
    asset_id, _ = upload(gql, token, collection, media.png())
    result = gql(COMPLETE, {"i": {"assetId": asset_id}}, token)["data"]["assetUploadComplete"]
    assert result["errors"][0]["code"] == "UPLOAD_NOT_FOUND"
    assert Asset.objects.get().state == AssetState.AWAITING_UPLOAD
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_completing_the_upload_of_an_asset_being_deleted_says_so_and_queues_nothing(
    gql: GQL, token: str, collection: Collection, owner: User
) -> None:
    asset_id, target = upload(gql, token, collection, media.png())
    _post(target, media.png(), "image/png")
    asset = Asset.objects.get()
    with mock.patch("domain.jobs.dispatch.send"):
        deletion.asset_delete(asset=asset, actor=Actor(user=owner))
    result = gql(COMPLETE, {"i": {"assetId": asset_id}}, token)["data"]["assetUploadComplete"]
    assert result["errors"] == [{"code": "INVALID_STATE", "message": "The asset is being deleted."}]
    assert Asset.objects.get().state == AssetState.DELETING
    assert list(Job.objects.values_list("kind", flat=True)) == [deletion.DELETE_ASSET_JOB]


@pytest.mark.django_db
def test_an_upload_larger_than_announced_never_gets_processed(
    gql: GQL, token: str, collection: Collection
) -> None:
    content = media.jpeg()
    asset_id, target = upload(gql, token, collection, content, announced=len(content) - 100)
    posted = _post(target, content, "image/jpeg")
    # The presigned policy pins the size; whether or not the store enforces it, the
    # completion check does, and removes the wrong bytes so the client can upload again.
    result = gql(COMPLETE, {"i": {"assetId": asset_id}}, token)["data"]["assetUploadComplete"]
    if posted.status_code >= 400:
        assert result["errors"][0]["code"] == "UPLOAD_NOT_FOUND"
    else:
        assert result["errors"][0]["code"] == "UPLOAD_SIZE_MISMATCH"
    asset = Asset.objects.get()
    assert asset.state == AssetState.AWAITING_UPLOAD
    assert storage.object_size(asset.storage_key) is None
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_an_upload_over_the_limit_is_refused_at_start(
    gql: GQL, token: str, collection: Collection, settings: Any
) -> None:
    settings.DEPOT_MAX_UPLOAD_BYTES = 1000
    result = gql(
        START,
        {
            "i": {
                "collectionId": global_id("Collection", collection.pk),
                "filename": "big.bin",
                "contentType": "application/octet-stream",
                "size": 1001,
            }
        },
        token,
    )["data"]["assetUploadStart"]
    assert result["errors"] == [
        {
            "code": "ASSET_TOO_LARGE",
            "message": "Uploads are limited to 1000 bytes.",
            "path": ["size"],
        }
    ]
    assert not Asset.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "declared", "code"),
    [
        (media.truncated(media.jpeg(800, 600)), "image/jpeg", "CORRUPT_FILE"),
        (media.HTML_POSING_AS_PNG, "image/png", "ACTIVE_CONTENT"),
        (media.png(), "image/jpeg", "CONTENT_TYPE_MISMATCH"),
    ],
    ids=["truncated-jpeg", "html-as-png", "png-as-jpeg"],
)
def test_a_file_that_is_not_what_it_claims_fails_with_a_reason(
    gql: GQL,
    token: str,
    collection: Collection,
    django_capture_on_commit_callbacks: Any,
    content: bytes,
    declared: str,
    code: str,
) -> None:
    asset_id, target = upload(gql, token, collection, content, content_type=declared)
    _post(target, content, declared)
    result = complete(gql, token, asset_id, django_capture_on_commit_callbacks)
    asset = gql(ASSET, {"id": asset_id}, token)["data"]["asset"]
    assert asset["state"] == "FAILED"
    assert asset["failure"]["code"] == code
    job = Job.objects.get()
    assert job.state == JobState.FAILED
    assert job.error is not None
    assert job.error["code"] == code
    assert not Rendition.objects.exists()
    assert result["errors"] == []
    # Only a file a browser would run is removed; the others stay, for their owner to look at.
    removed = storage.object_size(Asset.objects.get().storage_key) is None
    assert removed == (code == "ACTIVE_CONTENT")
    assert (asset["downloadUrl"] is None) == removed


@pytest.mark.django_db
def test_a_decompression_bomb_is_refused_before_decoding(
    gql: GQL,
    token: str,
    collection: Collection,
    django_capture_on_commit_callbacks: Any,
    settings: Any,
) -> None:
    settings.DEPOT_MAX_IMAGE_PIXELS = 100 * 100
    content = media.png(200, 200, mode="L")
    asset_id, target = upload(gql, token, collection, content, content_type="image/png")
    _post(target, content, "image/png")
    complete(gql, token, asset_id, django_capture_on_commit_callbacks)
    assert Asset.objects.get().failure["code"] == "IMAGE_TOO_LARGE"  # type: ignore[index]


@pytest.mark.django_db
def test_uploading_into_another_workspace_is_not_found(
    gql: GQL, token: str, other_workspace: Workspace
) -> None:
    foreign = Collection.objects.create(workspace=other_workspace, name="Theirs")
    result = gql(
        START,
        {
            "i": {
                "collectionId": global_id("Collection", foreign.pk),
                "filename": "x.png",
                "contentType": "image/png",
                "size": 10,
            }
        },
        token,
    )["data"]["assetUploadStart"]
    assert result["errors"][0]["code"] == "NOT_FOUND"
    assert not Asset.objects.exists()


@pytest.mark.django_db
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_a_worker_whose_disk_is_full_fails_the_job_with_a_code_and_a_retry_succeeds(
    gql: GQL,
    token: str,
    collection: Collection,
    django_capture_on_commit_callbacks: Any,
) -> None:
    content = media.png()
    asset_id, target = upload(gql, token, collection, content, content_type="image/png")
    _post(target, content, "image/png")
    # Every write to /dev/full fails with ENOSPC, as on a worker whose disk has filled up.
    with mock.patch("domain.assets.processing.scratch_path", return_value=Path("/dev/full")):
        result = complete(gql, token, asset_id, django_capture_on_commit_callbacks)
    job = Job.objects.get(kind="asset.process")
    assert (job.state, job.error and job.error["code"]) == (JobState.FAILED, "WORKER_DISK_FULL")
    failed = gql(ASSET, {"id": asset_id}, token)["data"]["asset"]
    assert (failed["state"], failed["failure"]["code"]) == ("FAILED", "WORKER_DISK_FULL")

    with mock.patch("domain.jobs.dispatch.send"):
        retried = gql(
            """mutation($id: ID!) { jobRetry(id: $id) { job { state } errors { code } } }""",
            {"id": result["job"]["id"]},
            token,
        )["data"]["jobRetry"]
    assert retried["errors"] == []
    runner.execute(job.pk)
    ready = gql(ASSET, {"id": asset_id}, token)["data"]["asset"]
    assert (ready["state"], ready["failure"]) == ("READY", None)


def _served(response: httpx.Response) -> tuple[str, str]:
    """The content type and disposition the store answered with."""
    return response.headers.get("content-type", ""), response.headers.get("content-disposition", "")


def _complete_without_running(gql: GQL, token: str, asset_id: str) -> int:
    """Complete the upload, and return the job without running it (the asset stays UPLOADED)."""
    with mock.patch("domain.jobs.dispatch.send"):
        result = gql(COMPLETE, {"i": {"assetId": asset_id}}, token)["data"]
    assert result["assetUploadComplete"]["errors"] == []
    return Job.objects.get(kind="asset.process").pk


@pytest.mark.django_db
def test_the_original_is_an_attachment_until_ready_then_served_as_its_sniffed_type(
    gql: GQL, token: str, collection: Collection
) -> None:
    # The client's word (image/x-png, stored with the object by the presigned POST) is not
    # what the store answers with: octet-stream until the bytes are vouched for, then theirs.
    content = media.png()
    asset_id, target = upload(
        gql, token, collection, content, content_type="image/x-png", filename="logo.png"
    )
    assert _post(target, content, "image/x-png").status_code in (200, 201, 204)
    job_id = _complete_without_running(gql, token, asset_id)
    uploaded = gql(ASSET, {"id": asset_id}, token)["data"]["asset"]
    assert uploaded["state"] == "UPLOADED"
    before = httpx.get(uploaded["downloadUrl"], timeout=30)
    assert before.status_code == 200
    assert before.content == content
    assert _served(before) == ("application/octet-stream", 'attachment; filename="logo.png"')

    runner.execute(job_id)
    ready = gql(ASSET, {"id": asset_id}, token)["data"]["asset"]
    assert (ready["state"], ready["contentType"]) == ("READY", "image/png")
    after = httpx.get(ready["downloadUrl"], timeout=30)
    assert after.content == content
    assert _served(after) == ("image/png", 'inline; filename="logo.png"')


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "declared", "filename", "sniffed"),
    [
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect/></svg>',
         "image/svg+xml", "logo.svg", "image/svg+xml"),
        (b"name,tags\nparis,city\n", "text/csv", "cities.csv", "text/csv"),
    ],
    ids=["svg", "csv"],
)  # fmt: skip
def test_a_ready_file_a_browser_could_run_or_render_as_a_page_is_an_attachment(
    gql: GQL,
    token: str,
    collection: Collection,
    django_capture_on_commit_callbacks: Any,
    content: bytes,
    declared: str,
    filename: str,
    sniffed: str,
) -> None:
    asset_id, target = upload(
        gql, token, collection, content, content_type=declared, filename=filename
    )
    _post(target, content, declared)
    complete(gql, token, asset_id, django_capture_on_commit_callbacks)
    asset = gql(ASSET, {"id": asset_id}, token)["data"]["asset"]
    assert (asset["state"], asset["contentType"]) == ("READY", sniffed)
    served = httpx.get(asset["downloadUrl"], timeout=30)
    assert served.content == content
    assert _served(served) == ("application/octet-stream", f'attachment; filename="{filename}"')


@pytest.mark.django_db
def test_an_svg_with_a_script_is_removed_and_a_retry_keeps_the_verdict(
    gql: GQL, token: str, collection: Collection, django_capture_on_commit_callbacks: Any
) -> None:
    content = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>'
    asset_id, target = upload(
        gql, token, collection, content, content_type="image/svg+xml", filename="logo.svg"
    )
    assert _post(target, content, "image/svg+xml").status_code in (200, 201, 204)
    key = Asset.objects.get().storage_key
    job_id = _complete_without_running(gql, token, asset_id)
    uploaded_link = gql(ASSET, {"id": asset_id}, token)["data"]["asset"]["downloadUrl"]
    runner.execute(job_id)

    failed = gql(ASSET, {"id": asset_id}, token)["data"]["asset"]
    assert (failed["state"], failed["failure"]["code"]) == ("FAILED", "ACTIVE_CONTENT")
    assert failed["downloadUrl"] is None
    assert storage.object_size(key) is None
    # A link handed out while it was being processed leads nowhere now.
    assert httpx.get(uploaded_link, timeout=30).status_code == 404

    with mock.patch("domain.jobs.dispatch.send"):
        retried = gql(
            """mutation($id: ID!) { jobRetry(id: $id) { errors { code } } }""",
            {"id": global_id("Job", job_id)},
            token,
        )["data"]["jobRetry"]
    assert retried["errors"] == []
    runner.execute(job_id)
    job = Job.objects.get(pk=job_id)
    assert (job.state, job.error and job.error["code"]) == (JobState.FAILED, "ACTIVE_CONTENT")
    again = gql(ASSET, {"id": asset_id}, token)["data"]["asset"]
    assert (again["state"], again["failure"]["code"]) == ("FAILED", "ACTIVE_CONTENT")


MULTIPART_START = """mutation($i: AssetMultipartUploadStartInput!) {
  assetMultipartUploadStart(input: $i) { asset { id } errors { code message path } }
}"""


@pytest.mark.django_db
@pytest.mark.parametrize("document", [START, MULTIPART_START], ids=["single", "multipart"])
@pytest.mark.parametrize(
    ("content_type", "filename", "path"),
    [
        ("text/html", "page.bin", "contentType"),
        ("application/xhtml+xml", "page", "contentType"),
        ("text/javascript", "app.txt", "contentType"),
        ("application/javascript", "app", "contentType"),
        ("application/x-php", "index", "contentType"),
        ("image/svg+xml", "logo.html", "filename"),
        ("text/plain", "notes.js", "filename"),
    ],
)
def test_a_declared_type_or_extension_a_browser_would_run_is_refused_at_the_door(
    gql: GQL,
    token: str,
    collection: Collection,
    document: str,
    content_type: str,
    filename: str,
    path: str,
) -> None:
    variables = {
        "i": {
            "collectionId": global_id("Collection", collection.pk),
            "filename": filename,
            "contentType": content_type,
            "size": 100,
        }
    }
    with mock.patch("domain.jobs.dispatch.send"):
        result = next(iter(gql(document, variables, token)["data"].values()))
    assert result["asset"] is None
    [error] = result["errors"]
    assert (error["code"], error["path"]) == ("ACTIVE_CONTENT", [path])
    assert not Asset.objects.exists()


@pytest.mark.django_db
def test_an_svg_is_accepted_at_the_door_its_bytes_decide(
    gql: GQL, token: str, collection: Collection
) -> None:
    _, target = upload(
        gql, token, collection, b"<svg/>", content_type="image/svg+xml", filename="logo.svg"
    )
    assert target["fields"]["Content-Type"] == "image/svg+xml"
    assert Asset.objects.get().state == AssetState.AWAITING_UPLOAD
