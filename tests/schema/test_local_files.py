"""Embedded mode's stand-ins for the store (project/files.py) on local files: a full disk
refuses an upload with 507 and keeps nothing, and download links serve an original as an
attachment of unknown type until processing vouches for its bytes.

The download view is called without the middleware, so its headers are its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import FileResponse
from django.http.response import HttpResponseBase
from django.test import Client, RequestFactory
from django.urls import resolve

from domain.accounts.models import Workspace
from domain.assets import storage
from domain.assets.models import Asset, AssetState, Collection
from domain.common.ids import global_id
from domain.jobs import runner
from domain.jobs.models import Job
from schema.errors import decode_id
from tests import media
from tests.conftest import GQL
from tests.support.disk import files_under, full_disk

START = """mutation($i: AssetUploadStartInput!) {
  assetUploadStart(input: $i) { asset { id } upload { url fields } errors { code message } }
}"""
COMPLETE = """mutation($i: AssetUploadCompleteInput!) {
  assetUploadComplete(input: $i) { asset { state } errors { code message } }
}"""
ASSET = """query($id: ID!) {
  asset(id: $id) {
    state contentType failure { code } downloadUrl renditions { preset url }
  }
}"""


@pytest.fixture
def collection(workspace: Workspace) -> Collection:
    return Collection.objects.create(workspace=workspace, name="Local")


@pytest.fixture(autouse=True)
def no_broker() -> Iterator[None]:
    with mock.patch("domain.jobs.dispatch.send"):
        yield


def _start(
    gql: GQL, token: str, collection: Collection, content: bytes, content_type: str, name: str
) -> tuple[str, dict[str, Any]]:
    started = gql(
        START,
        {
            "i": {
                "collectionId": global_id("Collection", collection.pk),
                "filename": name,
                "contentType": content_type,
                "size": len(content),
            }
        },
        token,
    )["data"]["assetUploadStart"]
    assert started["errors"] == [], started
    return started["asset"]["id"], started["upload"]


def _post(client: Client, upload: dict[str, Any], content: bytes) -> Any:
    file = SimpleUploadedFile("f", content, upload["fields"]["Content-Type"])
    return client.post(urlsplit(upload["url"]).path, {**upload["fields"], "file": file})


def _uploaded(
    gql: GQL,
    token: str,
    client: Client,
    collection: Collection,
    content: bytes,
    content_type: str,
    name: str,
) -> str:
    """An asset whose bytes are stored and whose processing is queued, not run (UPLOADED)."""
    asset_id, upload = _start(gql, token, collection, content, content_type, name)
    assert _post(client, upload, content).status_code == 204
    completed = gql(COMPLETE, {"i": {"assetId": asset_id}}, token)["data"]
    assert completed["assetUploadComplete"]["errors"] == []
    return asset_id


def _process(asset_id: str) -> None:
    pk = decode_id(asset_id, "Asset")
    runner.execute(Job.objects.get(kind="asset.process", parameters__asset_id=pk).pk)


def _fetch(url: str) -> tuple[HttpResponseBase, bytes]:
    """GET a local download link straight from its view: no middleware adds a header."""
    path = urlsplit(url).path
    match = resolve(path)
    response = match.func(RequestFactory().get(path), *match.args, **match.kwargs)
    if isinstance(response, FileResponse):
        body = b"".join(response.streaming_content)  # type: ignore[arg-type]
        # Not response.close(): it signals request_finished, which closes the test's database
        # connection.
        response.file_to_stream.close()  # type: ignore[union-attr]
        return response, body
    return response, response.content


def _served(response: HttpResponseBase) -> tuple[str, str, str]:
    return (
        response["Content-Type"],
        response.get("Content-Disposition", ""),
        response.get("X-Content-Type-Options", ""),
    )


@pytest.mark.django_db
def test_a_full_disk_refuses_a_local_upload_with_507_and_keeps_nothing(
    gql: GQL, token: str, collection: Collection, media_root: Path, client: Client
) -> None:
    content = media.png()
    asset_id, upload = _start(gql, token, collection, content, "image/png", "logo.png")
    with full_disk():
        refused = _post(client, upload, content)
    assert refused.status_code == 507
    assert refused.json()["code"] == "INSUFFICIENT_STORAGE"
    assert files_under(media_root) == []
    asset = Asset.objects.get()
    assert asset.state == AssetState.AWAITING_UPLOAD
    assert storage.object_size(asset.storage_key) is None
    missing = gql(COMPLETE, {"i": {"assetId": asset_id}}, token)["data"]["assetUploadComplete"]
    assert missing["errors"][0]["code"] == "UPLOAD_NOT_FOUND"

    # Once there is room again, the same form is accepted.
    assert _post(client, upload, content).status_code == 204
    completed = gql(COMPLETE, {"i": {"assetId": asset_id}}, token)["data"]["assetUploadComplete"]
    assert (completed["errors"], completed["asset"]["state"]) == ([], "UPLOADED")
    with storage.open_object(asset.storage_key) as stored:
        assert stored.read() == content


@pytest.mark.django_db
def test_a_full_disk_leaves_the_object_that_was_there(media_root: Path) -> None:
    storage.write_object("w/1/original", SimpleUploadedFile("f", b"before"), "image/png")
    with full_disk(), pytest.raises(OSError, match="No space left"):
        storage.write_object("w/1/original", SimpleUploadedFile("f", b"after"), "image/png")
    assert [path.name for path in files_under(media_root)] == ["original"]
    assert (media_root / "w/1/original").read_bytes() == b"before"


@pytest.mark.django_db
def test_local_links_serve_the_sniffed_type_only_once_ready_and_never_let_a_browser_sniff(
    gql: GQL, token: str, collection: Collection, media_root: Path, client: Client
) -> None:
    content = media.png()
    asset_id = _uploaded(gql, token, client, collection, content, "image/x-png", "logo.png")
    uploaded = gql(ASSET, {"id": asset_id}, token)["data"]["asset"]
    assert uploaded["state"] == "UPLOADED"
    response, body = _fetch(uploaded["downloadUrl"])
    assert body == content
    assert _served(response) == (
        "application/octet-stream",
        'attachment; filename="logo.png"',
        "nosniff",
    )

    _process(asset_id)
    ready = gql(ASSET, {"id": asset_id}, token)["data"]["asset"]
    assert (ready["state"], ready["contentType"]) == ("READY", "image/png")
    response, body = _fetch(ready["downloadUrl"])
    assert body == content
    assert _served(response) == ("image/png", 'inline; filename="logo.png"', "nosniff")
    [thumb] = [r for r in ready["renditions"] if r["preset"] == "thumb-256"]
    response, body = _fetch(thumb["url"])
    assert body[:3] == b"\xff\xd8\xff"
    assert _served(response) == ("image/jpeg", "inline", "nosniff")


@pytest.mark.django_db
def test_a_local_svg_is_an_attachment_and_one_with_a_script_is_removed(
    gql: GQL, token: str, collection: Collection, media_root: Path, client: Client
) -> None:
    clean = b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect/></svg>'
    clean_id = _uploaded(gql, token, client, collection, clean, "image/svg+xml", "a.svg")
    _process(clean_id)
    ready = gql(ASSET, {"id": clean_id}, token)["data"]["asset"]
    assert (ready["state"], ready["contentType"]) == ("READY", "image/svg+xml")
    response, body = _fetch(ready["downloadUrl"])
    assert body == clean
    assert _served(response) == (
        "application/octet-stream",
        'attachment; filename="a.svg"',
        "nosniff",
    )

    script = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    script_id = _uploaded(gql, token, client, collection, script, "image/svg+xml", "b.svg")
    link = gql(ASSET, {"id": script_id}, token)["data"]["asset"]["downloadUrl"]
    _process(script_id)
    failed = gql(ASSET, {"id": script_id}, token)["data"]["asset"]
    assert (failed["state"], failed["failure"]["code"]) == ("FAILED", "ACTIVE_CONTENT")
    assert failed["downloadUrl"] is None
    assert not storage.local_path(
        Asset.objects.get(pk=decode_id(script_id, "Asset")).storage_key
    ).exists()
    assert _fetch(link)[0].status_code == 404
