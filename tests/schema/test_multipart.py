"""Multipart uploads through GraphQL, in both storage modes: the suite's SeaweedFS (real S3,
parts PUT over plain HTTP straight to it) and local files (embedded mode, parts PUT to
Depot's signed part URLs).

SeaweedFS, like S3, refuses parts under 5 MiB but the last, so the S3 runs use 5 MiB parts;
the local runs use small ones.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import httpx
import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from domain.accounts.models import User, Workspace
from domain.assets import multipart, multipart_store, storage
from domain.assets.models import Asset, AssetState, Collection, MultipartUpload
from domain.common.ids import global_id
from domain.jobs import runner
from domain.jobs.models import Event, Job
from tests import factories
from tests.conftest import GQL
from tests.support.disk import files_under, full_disk
from tests.support.local_storage import use_local_storage

START = """mutation($i: AssetMultipartUploadStartInput!) {
  assetMultipartUploadStart(input: $i) {
    asset { id state } upload { uploadId partSize partCount expiresAt }
    duplicateOf { id } errors { code message path }
  }
}"""
PART_URLS = """mutation($i: AssetMultipartUploadPartUrlsInput!) {
  assetMultipartUploadPartUrls(input: $i) {
    parts { partNumber size url expiresAt } errors { code message path }
  }
}"""
PARTS = """mutation($i: AssetMultipartUploadPartsInput!) {
  assetMultipartUploadParts(input: $i) {
    upload { partCount } parts { partNumber size etag } missingPartNumbers
    errors { code message path }
  }
}"""
COMPLETE = """mutation($i: AssetMultipartUploadCompleteInput!) {
  assetMultipartUploadComplete(input: $i) {
    asset { id state } job { id kind state } errors { code message path }
  }
}"""
ABORT = """mutation($i: AssetMultipartUploadAbortInput!) {
  assetMultipartUploadAbort(input: $i) { deletedAssetId errors { code message path } }
}"""


@dataclass
class Mode:
    """One storage mode: how big the parts are and how a client PUTs one."""

    name: str
    part_size: int
    put: Callable[[str, bytes], httpx.Response | Any]

    def etag(self, response: Any) -> str:
        return str(response.headers["ETag"])


def _local_mode(settings: Any, media_root: Path, client: Client) -> Mode:
    use_local_storage(settings, media_root)
    settings.DEPOT_MULTIPART_PART_BYTES = 4096

    def put(url: str, body: bytes) -> Any:
        assert url.startswith("http://testserver/uploads/local/parts/")
        return client.generic("PUT", urlsplit(url).path, body, "application/octet-stream")

    return Mode("local", 4096, put)


@pytest.fixture(params=["s3", "local"])
def mode(request: pytest.FixtureRequest, settings: Any, tmp_path: Path, client: Client) -> Mode:
    if request.param == "local":
        return _local_mode(settings, tmp_path / "media", client)
    if not settings.S3_BUCKET:
        pytest.skip("needs S3")
    settings.DEPOT_MULTIPART_PART_BYTES = 5 * 1024 * 1024
    # Plain HTTP straight to the object store: the bytes never reach Depot.
    return Mode("s3", 5 * 1024 * 1024, lambda url, body: httpx.put(url, content=body))


@pytest.fixture
def local_mode(settings: Any, tmp_path: Path, client: Client) -> Mode:
    return _local_mode(settings, tmp_path / "media", client)


@pytest.fixture
def collection(workspace: Workspace) -> Collection:
    return Collection.objects.create(workspace=workspace, name="Videos")


@pytest.fixture(autouse=True)
def no_broker() -> Iterator[mock.MagicMock]:
    with mock.patch("domain.jobs.dispatch.send") as send:
        yield send


def _content(mode: Mode) -> bytes:
    """Two full parts and a shorter last one."""
    return os.urandom(2 * mode.part_size + mode.part_size // 3)


def _start(gql: GQL, token: str, collection: Collection, content: bytes, **extra: Any) -> Any:
    return gql(
        START,
        {
            "i": {
                "collectionId": global_id("Collection", collection.pk),
                "filename": "clip.bin",
                "contentType": "application/octet-stream",
                "size": len(content),
                **extra,
            }
        },
        token,
    )["data"]["assetMultipartUploadStart"]


def _call(gql: GQL, token: str, document: str, **input: Any) -> Any:
    return next(iter(gql(document, {"i": input}, token)["data"].values()))


def _urls(gql: GQL, token: str, asset_id: str, *numbers: int) -> dict[int, str]:
    answer = _call(gql, token, PART_URLS, assetId=asset_id, partNumbers=list(numbers))
    assert answer["errors"] == [], answer
    return {part["partNumber"]: part["url"] for part in answer["parts"]}


def _piece(content: bytes, mode: Mode, number: int) -> bytes:
    return content[(number - 1) * mode.part_size : number * mode.part_size]


def _started(gql: GQL, token: str, collection: Collection, content: bytes) -> tuple[str, Asset]:
    started = _start(gql, token, collection, content)
    assert started["errors"] == []
    return started["asset"]["id"], Asset.objects.get()


def _pending_in_store(asset: Asset) -> list[str]:
    """The multipart uploads the store still holds for the asset's key."""
    if storage.is_s3():
        listed = storage.internal_s3_client().list_multipart_uploads(
            Bucket=django_settings.S3_BUCKET, Prefix=asset.storage_key
        )
        return [upload["UploadId"] for upload in listed.get("Uploads", [])]
    area = storage.local_path(multipart_store.LOCAL_AREA)
    return sorted(path.name for path in area.iterdir()) if area.exists() else []


@pytest.mark.django_db
def test_a_dropped_part_is_sent_again_and_the_upload_completes(
    gql: GQL, token: str, collection: Collection, mode: Mode, no_broker: mock.MagicMock
) -> None:
    content = _content(mode)
    started = _start(gql, token, collection, content)
    assert started["errors"] == []
    assert started["upload"]["partSize"] == mode.part_size
    assert started["upload"]["partCount"] == 3
    asset_id = started["asset"]["id"]
    assert started["asset"]["state"] == "AWAITING_UPLOAD"
    asset = Asset.objects.get()
    assert asset.storage_key.startswith(f"{collection.workspace_id}/{asset.pk}/")

    urls = _urls(gql, token, asset_id, 1, 2, 3)
    etags = {}
    for number in (1, 3):  # part 2 is "dropped": never uploaded
        answer = mode.put(urls[number], _piece(content, mode, number))
        assert answer.status_code == 200
        etags[number] = mode.etag(answer)
    assert etags[1] == f'"{hashlib.md5(_piece(content, mode, 1)).hexdigest()}"'  # noqa: S324

    parts = _call(gql, token, PARTS, assetId=asset_id)
    assert [(p["partNumber"], p["size"], p["etag"]) for p in parts["parts"]] == [
        (1, mode.part_size, etags[1]),
        (3, len(content) - 2 * mode.part_size, etags[3]),
    ]
    assert parts["missingPartNumbers"] == [2]

    refused = _call(gql, token, COMPLETE, assetId=asset_id)
    assert refused["errors"][0]["code"] == "UPLOAD_PARTS_MISSING"
    assert "2" in refused["errors"][0]["message"]
    assert Asset.objects.get().state == AssetState.AWAITING_UPLOAD
    assert not Job.objects.exists()

    # Resume: ask again for the missing part's URL, send it, complete with the ETags.
    again = _urls(gql, token, asset_id, 2)
    answer = mode.put(again[2], _piece(content, mode, 2))
    assert answer.status_code == 200
    etags[2] = mode.etag(answer)
    completed = _call(
        gql,
        token,
        COMPLETE,
        assetId=asset_id,
        parts=[{"partNumber": n, "etag": etags[n]} for n in (1, 2, 3)],
    )
    assert completed["errors"] == []
    assert completed["asset"]["state"] == "UPLOADED"
    assert completed["job"]["kind"] == "asset.process"
    assert not MultipartUpload.objects.exists()
    assert _pending_in_store(asset) == []
    assert storage.object_size(asset.storage_key) == len(content)

    runner.execute(Job.objects.get().pk)
    asset.refresh_from_db()
    assert asset.state == AssetState.READY
    assert asset.sha256 == hashlib.sha256(content).hexdigest()
    # Completing again answers like assetUploadComplete: the same job.
    repeated = _call(gql, token, COMPLETE, assetId=asset_id)
    assert repeated["job"]["id"] == completed["job"]["id"]
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_a_part_of_another_size_is_refused_and_nothing_is_lost(
    gql: GQL, token: str, collection: Collection, mode: Mode, settings: Any
) -> None:
    content = _content(mode)
    asset_id, asset = _started(gql, token, collection, content)
    urls = _urls(gql, token, asset_id, 1, 2, 3)
    # The part URL pins the size: the store (or Depot's local view) refuses other bytes.
    assert mode.put(urls[2], _piece(content, mode, 2)[:-1]).status_code in (400, 403)
    for number in (1, 3):
        assert mode.put(urls[number], _piece(content, mode, number)).status_code == 200
    # A store that did not pin it would keep a short part 2: put one there behind our back.
    upload = MultipartUpload.objects.get()
    short = _piece(content, mode, 2)[:-10]
    if mode.name == "s3":
        storage.internal_s3_client().upload_part(
            Bucket=settings.S3_BUCKET,
            Key=asset.storage_key,
            UploadId=upload.upload_id,
            PartNumber=2,
            Body=short,
        )
    else:
        part = multipart_store.LocalPart(asset.storage_key, upload.upload_id, 2, len(short))
        multipart_store.store_local_part(part, _Reader(short))

    refused = _call(gql, token, COMPLETE, assetId=asset_id)
    assert refused["errors"] == [
        {
            "code": "UPLOAD_SIZE_MISMATCH",
            "message": f"The parts hold {len(content) - 10} bytes, but {len(content)} were "
            f"announced: part 2 has {len(short)} bytes instead of {mode.part_size}. Upload it "
            "again.",
            "path": ["parts", "2"],
        }
    ]
    assert Asset.objects.get().state == AssetState.AWAITING_UPLOAD
    assert not Job.objects.exists()
    parts = _call(gql, token, PARTS, assetId=asset_id)
    assert [p["partNumber"] for p in parts["parts"]] == [1, 2, 3]

    # Nothing was lost: sending part 2 again is enough.
    assert mode.put(urls[2], _piece(content, mode, 2)).status_code == 200
    completed = _call(gql, token, COMPLETE, assetId=asset_id)
    assert completed["errors"] == []
    assert completed["job"]["kind"] == "asset.process"
    with storage.open_object(asset.storage_key) as stored:
        assert stored.read() == content


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, size: int = -1) -> bytes:
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk


@pytest.mark.django_db
def test_a_part_sent_again_since_the_client_listed_it_is_refused(
    gql: GQL, token: str, collection: Collection, mode: Mode
) -> None:
    content = _content(mode)
    asset_id, _ = _started(gql, token, collection, content)
    urls = _urls(gql, token, asset_id, 1, 2, 3)
    etags = {n: mode.etag(mode.put(urls[n], _piece(content, mode, n))) for n in (1, 2, 3)}
    refused = _call(
        gql,
        token,
        COMPLETE,
        assetId=asset_id,
        parts=[
            {"partNumber": n, "etag": '"0123456789abcdef0123456789abcdef"' if n == 3 else etags[n]}
            for n in (1, 2, 3)
        ],
    )
    assert refused["errors"][0]["code"] == "UPLOAD_PART_MISMATCH"
    assert refused["errors"][0]["path"] == ["parts", "3"]
    # A client that leaves a part out of its list has not uploaded it, as far as it knows.
    partial = [{"partNumber": n, "etag": etags[n]} for n in (1, 3)]
    missing = _call(gql, token, COMPLETE, assetId=asset_id, parts=partial)
    assert missing["errors"][0]["code"] == "UPLOAD_PARTS_MISSING"
    assert Asset.objects.get().state == AssetState.AWAITING_UPLOAD
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_aborting_drops_the_parts_and_deletes_the_asset(
    gql: GQL, token: str, collection: Collection, mode: Mode
) -> None:
    content = _content(mode)
    asset_id, asset = _started(gql, token, collection, content)
    urls = _urls(gql, token, asset_id, 1)
    assert mode.put(urls[1], _piece(content, mode, 1)).status_code == 200
    assert len(_pending_in_store(asset)) == 1

    aborted = _call(gql, token, ABORT, assetId=asset_id)
    assert aborted == {"deletedAssetId": asset_id, "errors": []}
    assert not Asset.objects.exists()
    assert not MultipartUpload.objects.exists()
    assert _pending_in_store(asset) == []
    assert storage.object_size(asset.storage_key) is None
    event = Event.objects.filter(type="asset.deleted").get()
    assert event.payload["reason"] == "UPLOAD_ABORTED"
    # A part URL handed out before is refused now, and the asset is gone for every call.
    assert mode.put(urls[1], _piece(content, mode, 1)).status_code == 404
    assert _call(gql, token, ABORT, assetId=asset_id)["errors"][0]["code"] == "NOT_FOUND"
    assert _call(gql, token, PARTS, assetId=asset_id)["errors"][0]["code"] == "NOT_FOUND"


@pytest.mark.django_db
def test_expired_and_orphaned_uploads_are_aborted(
    gql: GQL, token: str, collection: Collection, mode: Mode
) -> None:
    content = _content(mode)
    asset_id, asset = _started(gql, token, collection, content)
    mode.put(_urls(gql, token, asset_id, 1)[1], _piece(content, mode, 1))
    # An upload whose asset was deleted meanwhile: the store holds it and no row names it.
    orphan_key = f"{collection.workspace_id}/999999/{'a' * 32}"
    orphan = multipart_store.create(key=orphan_key, content_type="application/octet-stream")

    assert multipart.multipart_uploads_expire()["expired"] == 0
    assert Asset.objects.filter(pk=asset.pk).exists()
    assert orphan in _pending_in_store(Asset(storage_key=orphan_key))

    hours = django_settings.DEPOT_MULTIPART_EXPIRY_HOURS
    swept = multipart.multipart_uploads_expire(now=timezone.now() + timedelta(hours=hours + 1))
    # Other tests of this run may have left uploads in the shared bucket: at least ours.
    assert swept["expired"] == 1
    assert swept["orphans"] >= 1
    assert not Asset.objects.filter(pk=asset.pk).exists()
    assert _pending_in_store(asset) == []
    assert orphan not in _pending_in_store(Asset(storage_key=orphan_key))
    assert Event.objects.get(type="asset.deleted").payload["reason"] == "UPLOAD_EXPIRED"


@pytest.mark.django_db
def test_part_urls_only_for_the_planned_parts(
    gql: GQL, token: str, collection: Collection, mode: Mode
) -> None:
    content = _content(mode)
    asset_id, _ = _started(gql, token, collection, content)
    for numbers in ([0], [4], [], list(range(1, 1002))):
        answer = _call(gql, token, PART_URLS, assetId=asset_id, partNumbers=numbers)
        assert answer["errors"][0]["code"] == "INVALID_UPLOAD", numbers
        assert answer["errors"][0]["path"] == ["partNumbers"]
    single = factories.asset(collection, state=AssetState.AWAITING_UPLOAD)
    for document in (PART_URLS, PARTS, ABORT):
        extra = {"partNumbers": [1]} if document is PART_URLS else {}
        answer = _call(gql, token, document, assetId=global_id("Asset", single.pk), **extra)
        assert answer["errors"][0]["code"] == "INVALID_STATE"


@pytest.mark.django_db
def test_a_local_part_url_is_signed_and_expires(
    gql: GQL, token: str, collection: Collection, local_mode: Mode, client: Client, settings: Any
) -> None:
    content = _content(local_mode)
    asset_id, _ = _started(gql, token, collection, content)
    path = urlsplit(_urls(gql, token, asset_id, 1)[1]).path
    body = _piece(content, local_mode, 1)
    tampered = path.replace("/parts/", "/parts/x")
    assert client.generic("PUT", tampered, body).json()["code"] == "POLICY_INVALID"
    assert client.post(path, body, content_type="application/octet-stream").status_code == 405
    settings.DEPOT_UPLOAD_URL_TTL_SECONDS = -1
    assert client.generic("PUT", path, body).json()["code"] == "POLICY_EXPIRED"


@pytest.mark.django_db
def test_start_makes_the_checks_of_asset_upload_start(
    gql: GQL, token: str, collection: Collection, settings: Any, workspace: Workspace
) -> None:
    settings.DEPOT_MAX_UPLOAD_BYTES = 1000
    too_large = _start(gql, token, collection, b"x" * 1001)
    assert too_large["errors"][0]["code"] == "ASSET_TOO_LARGE"
    workspace.media_settings = {"allowedKinds": ["image"]}
    workspace.save()
    video = _start(gql, token, collection, b"x" * 10, contentType="video/mp4")
    assert video["errors"][0]["code"] == "KIND_NOT_ALLOWED"
    bad_sum = _start(gql, token, collection, b"x" * 10, contentType="image/png", sha256="nope")
    assert bad_sum["errors"][0]["code"] == "INVALID_UPLOAD"
    assert not Asset.objects.exists()
    assert not MultipartUpload.objects.exists()

    ready = factories.asset(collection, sha256="ab" * 32)
    linked = _start(
        gql,
        token,
        collection,
        b"x" * 10,
        contentType="image/jpeg",
        sha256="ab" * 32,
        onDuplicate="LINK",
    )
    assert linked["errors"] == []
    assert linked["asset"]["id"] == global_id("Asset", ready.pk)
    assert linked["upload"] is None
    assert linked["duplicateOf"] == {"id": global_id("Asset", ready.pk)}
    assert Asset.objects.count() == 1
    keyed = {"contentType": "image/jpeg", "sha256": "ab" * 32, "onDuplicate": "LINK"}
    first = _start(gql, token, collection, b"x" * 10, idempotencyKey="link-1", **keyed)
    again = _start(gql, token, collection, b"x" * 10, idempotencyKey="link-1", **keyed)
    assert again == first, "a repeat answers as the first did, duplicateOf included"


@pytest.mark.django_db
def test_a_repeated_start_with_an_idempotency_key_returns_the_same_upload(
    gql: GQL, token: str, collection: Collection, mode: Mode
) -> None:
    content = _content(mode)
    first = _start(gql, token, collection, content, idempotencyKey="clip-1")
    again = _start(gql, token, collection, content, idempotencyKey="clip-1")
    assert first["errors"] == again["errors"] == []
    assert again["asset"]["id"] == first["asset"]["id"]
    assert again["upload"] == first["upload"]
    assert Asset.objects.count() == 1
    other = _start(gql, token, collection, content + b"x", idempotencyKey="clip-1")
    assert other["errors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"

    # After an abort the asset is gone: a repeat says so (it was an INTERNAL_ERROR).
    _call(gql, token, ABORT, assetId=first["asset"]["id"])
    gone = _start(gql, token, collection, content, idempotencyKey="clip-1")
    assert gone["asset"] is None
    assert [(e["code"], e["path"]) for e in gone["errors"]] == [("NOT_FOUND", ["idempotencyKey"])]


@pytest.mark.django_db
def test_another_workspaces_upload_reads_like_a_missing_one(
    gql: GQL,
    token: str,
    make_token: Callable[..., str],
    other_workspace: Workspace,
    stranger: User,
    mode: Mode,
) -> None:
    theirs = Collection.objects.create(workspace=other_workspace, name="Theirs")
    their_token = make_token("read", "write", user=stranger, in_workspace=other_workspace)
    content = _content(mode)
    their_asset, _ = _started(gql, their_token, theirs, content)
    mode.put(_urls(gql, their_token, their_asset, 1)[1], _piece(content, mode, 1))
    missing = global_id("Asset", 987_654)
    for document, extra in (
        (PART_URLS, {"partNumbers": [2]}),
        (PARTS, {}),
        (COMPLETE, {}),
        (ABORT, {}),
    ):
        foreign = _call(gql, token, document, assetId=their_asset, **extra)
        assert foreign == _call(gql, token, document, assetId=missing, **extra)
        assert foreign["errors"][0]["code"] == "NOT_FOUND"
    start = _start(gql, token, theirs, content)
    assert start["errors"][0]["code"] == "NOT_FOUND"
    # Their upload goes on untouched.
    theirs_now = _call(gql, their_token, PARTS, assetId=their_asset)
    assert [part["partNumber"] for part in theirs_now["parts"]] == [1]
    assert Asset.objects.count() == 1


@pytest.mark.django_db
def test_a_read_only_token_is_refused(
    gql: GQL, make_token: Callable[..., str], token: str, collection: Collection, mode: Mode
) -> None:
    content = _content(mode)
    asset_id, _ = _started(gql, token, collection, content)
    read_only = make_token("read")
    assert _start(gql, read_only, collection, content)["errors"][0]["code"] == "FORBIDDEN"
    for document, extra in (
        (PART_URLS, {"partNumbers": [1]}),
        (PARTS, {}),
        (COMPLETE, {}),
        (ABORT, {}),
    ):
        refused = _call(gql, read_only, document, assetId=asset_id, **extra)
        assert refused["errors"][0]["code"] == "FORBIDDEN"
    assert Asset.objects.count() == 1
    assert MultipartUpload.objects.count() == 1


def test_parts_grow_past_ten_thousand_only(settings: Any) -> None:
    settings.DEPOT_MULTIPART_PART_BYTES = 8 * 1024 * 1024
    assert multipart.part_plan(1) == (8 * 1024 * 1024, 1)
    assert multipart.part_plan(5 * 1024**3) == (8 * 1024 * 1024, 640)
    size = 200 * 1024**3
    part_size, count = multipart.part_plan(size)
    assert count <= multipart.MAX_PARTS
    assert part_size * count >= size > part_size * (count - 1)


DELETE = """mutation($i: DeleteInput!) { assetDelete(input: $i) { job { id } errors { code } } }"""


@pytest.mark.django_db
def test_deleting_an_asset_mid_upload_aborts_its_upload_in_the_store(
    gql: GQL, token: str, collection: Collection, mode: Mode
) -> None:
    content = _content(mode)
    asset_id, asset = _started(gql, token, collection, content)
    urls = _urls(gql, token, asset_id, 1, 2)
    assert mode.put(urls[1], _piece(content, mode, 1)).status_code == 200
    upload_id = MultipartUpload.objects.get().upload_id
    assert _pending_in_store(asset) == [upload_id]

    deleted = _call(gql, token, DELETE, id=asset_id)
    assert deleted["errors"] == []
    # Until its job has run the asset is DELETING: finishing or aborting its upload says so.
    for document in (COMPLETE, ABORT):
        refused = _call(gql, token, document, assetId=asset_id)
        assert refused["errors"] == [
            {"code": "INVALID_STATE", "message": "The asset is being deleted.", "path": ["assetId"]}
        ]
    assert Asset.objects.get().state == AssetState.DELETING
    runner.execute(Job.objects.get(kind="asset.delete").pk)
    assert not Asset.objects.exists()
    assert not MultipartUpload.objects.exists()
    # The parts are gone at once, not at the next sweep of orphans; URLs handed out are refused.
    assert _pending_in_store(asset) == []
    assert mode.put(urls[2], _piece(content, mode, 2)).status_code == 404


@pytest.mark.django_db
def test_a_part_sent_to_a_full_disk_is_refused_with_507_and_leaves_nothing(
    gql: GQL, token: str, collection: Collection, local_mode: Mode
) -> None:
    content = _content(local_mode)
    asset_id, _ = _started(gql, token, collection, content)
    url = _urls(gql, token, asset_id, 1)[1]
    directory = storage.local_path(
        f"{multipart_store.LOCAL_AREA}/{MultipartUpload.objects.get().upload_id}"
    )
    with full_disk():
        refused = local_mode.put(url, _piece(content, local_mode, 1))
    assert refused.status_code == 507
    assert refused.json()["code"] == "INSUFFICIENT_STORAGE"
    assert [path.name for path in files_under(directory)] == ["upload.json"]
    assert _call(gql, token, PARTS, assetId=asset_id)["missingPartNumbers"] == [1, 2, 3]
    assert Asset.objects.get().state == AssetState.AWAITING_UPLOAD

    # Once there is room again, the same URL takes the part.
    assert local_mode.put(url, _piece(content, local_mode, 1)).status_code == 200
    assert _call(gql, token, PARTS, assetId=asset_id)["missingPartNumbers"] == [2, 3]
