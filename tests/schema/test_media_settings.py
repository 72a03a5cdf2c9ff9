"""A workspace's media settings: reading and changing them, and both ends of the upload
(assetUploadStart and the processing job) honouring them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from domain.accounts.models import Role, User, Workspace
from domain.accounts.services import membership_add
from domain.assets.models import Asset, AssetState, Collection, Rendition
from domain.common.ids import global_id
from domain.jobs.models import Event, Job, JobState
from tests import media
from tests.conftest import GQL
from tests.domain.media import corpus
from tests.schema.test_uploads import ASSET, START, _post, complete, upload

SETTINGS = """query($id: ID!) {
  workspace(id: $id) {
    mediaSettings { maxUploadBytes allowedKinds allowGps presets { name maxSide format quality } }
  }
}"""
UPDATE = """mutation($i: WorkspaceMediaSettingsUpdateInput!) {
  workspaceMediaSettingsUpdate(input: $i) {
    workspace { id }
    mediaSettings { maxUploadBytes allowedKinds allowGps presets { name maxSide format quality } }
    errors { code message path }
  }
}"""
DEFAULT_PRESETS = [
    {"name": "thumb-256", "maxSide": 256, "format": "JPEG", "quality": 85},
    {"name": "preview-1024", "maxSide": 1024, "format": "JPEG", "quality": 85},
    {"name": "preview-1024-webp", "maxSide": 1024, "format": "WEBP", "quality": 80},
]
ALL_KINDS = ["IMAGE", "PDF", "VIDEO", "AUDIO", "TEXT", "OTHER"]


@pytest.fixture
def collection(workspace: Workspace) -> Collection:
    return Collection.objects.create(workspace=workspace, name="Photos")


def _update(gql: GQL, token: str, workspace: Workspace, **changes: Any) -> dict[str, Any]:
    variables = {"i": {"workspaceId": global_id("Workspace", workspace.pk), **changes}}
    return dict(gql(UPDATE, variables, token)["data"]["workspaceMediaSettingsUpdate"])


@pytest.mark.django_db
def test_a_workspace_starts_with_the_defaults(
    gql: GQL, token: str, workspace: Workspace, settings: Any
) -> None:
    settings.DEPOT_MAX_UPLOAD_BYTES = 5_000_000
    found = gql(SETTINGS, {"id": global_id("Workspace", workspace.pk)}, token)["data"]
    assert found["workspace"]["mediaSettings"] == {
        "maxUploadBytes": 5_000_000,
        "allowedKinds": ALL_KINDS,
        "allowGps": False,
        "presets": DEFAULT_PRESETS,
    }


@pytest.mark.django_db
def test_an_owner_changes_the_settings_and_an_event_says_so(
    gql: GQL, make_token: Callable[..., str], workspace: Workspace
) -> None:
    token = make_token("read", "write", "admin")
    result = _update(
        gql,
        token,
        workspace,
        maxUploadBytes=1000,
        allowedKinds=["PDF", "IMAGE"],
        allowGps=True,
        presets=[{"name": "square-64", "maxSide": 64, "format": "PNG"}],
    )
    assert result["errors"] == []
    expected = {
        "maxUploadBytes": 1000,
        "allowedKinds": ["IMAGE", "PDF"],
        "allowGps": True,
        "presets": [{"name": "square-64", "maxSide": 64, "format": "PNG", "quality": 85}],
    }
    assert result["mediaSettings"] == expected
    read = gql(SETTINGS, {"id": global_id("Workspace", workspace.pk)}, token)["data"]
    assert read["workspace"]["mediaSettings"] == expected
    event = Event.objects.get(type="workspace.media_settings_updated")
    assert event.payload["mediaSettings"]["allowedKinds"] == ["image", "pdf"]


@pytest.mark.django_db
def test_an_omitted_setting_stays_and_null_restores_the_default(
    gql: GQL, make_token: Callable[..., str], workspace: Workspace
) -> None:
    token = make_token("read", "write", "admin")
    _update(gql, token, workspace, maxUploadBytes=1000, allowGps=True)
    result = _update(gql, token, workspace, maxUploadBytes=None)
    assert result["errors"] == []
    workspace.refresh_from_db()
    assert workspace.media_settings == {"allowGps": True}
    assert result["mediaSettings"]["allowGps"] is True
    assert result["mediaSettings"]["presets"] == DEFAULT_PRESETS


@pytest.mark.django_db
def test_an_editor_may_not_change_the_settings(
    gql: GQL, make_user: Callable[..., User], make_token: Callable[..., str], workspace: Workspace
) -> None:
    editor = make_user("editor")
    membership_add(workspace=workspace, user=editor, role=Role.EDITOR)
    token = make_token("read", "write", "admin", user=editor)
    result = _update(gql, token, workspace, allowGps=True)
    assert result["errors"][0]["code"] == "FORBIDDEN"
    assert result["mediaSettings"] is None
    workspace.refresh_from_db()
    assert workspace.media_settings == {}
    assert not Event.objects.filter(type="workspace.media_settings_updated").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"maxUploadBytes": 0}, ["maxUploadBytes"]),
        ({"maxUploadBytes": 10**12}, ["maxUploadBytes"]),
        ({"allowedKinds": []}, ["allowedKinds"]),
        (
            {"presets": [{"name": "Big Thumb", "maxSide": 64, "format": "JPEG"}]},
            ["presets", "0", "name"],
        ),
        (
            {"presets": [{"name": "../x", "maxSide": 64, "format": "JPEG"}]},
            ["presets", "0", "name"],
        ),
        (
            {
                "presets": [
                    {"name": "a", "maxSide": 64, "format": "JPEG"},
                    {"name": "a", "maxSide": 128, "format": "WEBP"},
                ]
            },
            ["presets", "1", "name"],
        ),
        ({"presets": [{"name": "a", "maxSide": 8, "format": "JPEG"}]}, ["presets", "0", "maxSide"]),
        (
            {"presets": [{"name": "a", "maxSide": 64, "format": "JPEG", "quality": 0}]},
            ["presets", "0", "quality"],
        ),
        (
            {"presets": [{"name": f"p{n}", "maxSide": 64, "format": "PNG"} for n in range(9)]},
            ["presets"],
        ),
    ],
    ids=[
        "zero-bytes",
        "over-the-deployment",
        "no-kind",
        "bad-name",
        "path-in-name",
        "same-name",
        "tiny",
        "quality",
        "too-many",
    ],
)
def test_invalid_settings_are_refused_with_the_field_and_change_nothing(
    gql: GQL,
    make_token: Callable[..., str],
    workspace: Workspace,
    changes: dict[str, Any],
    path: list[str],
) -> None:
    result = _update(gql, make_token("read", "write", "admin"), workspace, **changes)
    assert [(e["code"], e["path"]) for e in result["errors"]] == [("INVALID_INPUT", path)]
    workspace.refresh_from_db()
    assert workspace.media_settings == {}
    assert not Event.objects.filter(type="workspace.media_settings_updated").exists()


def _start(
    gql: GQL, token: str, collection: Collection, content_type: str, size: int
) -> dict[str, Any]:
    variables = {
        "collectionId": global_id("Collection", collection.pk),
        "filename": "file",
        "contentType": content_type,
        "size": size,
    }
    return dict(gql(START, {"i": variables}, token)["data"]["assetUploadStart"])


@pytest.mark.django_db
def test_an_upload_over_the_workspace_limit_is_refused(
    gql: GQL, token: str, workspace: Workspace, collection: Collection
) -> None:
    workspace.media_settings = {"maxUploadBytes": 100}
    workspace.save()
    result = _start(gql, token, collection, "image/png", 101)
    assert result["errors"] == [
        {
            "code": "ASSET_TOO_LARGE",
            "message": "Uploads are limited to 100 bytes.",
            "path": ["size"],
        }
    ]
    assert not Asset.objects.exists()
    assert _start(gql, token, collection, "image/png", 100)["errors"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content_type", "allowed"),
    [
        ("application/pdf", ["image"]),
        ("video/mp4", ["image", "pdf"]),
        ("text/csv", ["image"]),
        ("application/zip", ["image", "text"]),
    ],
)
def test_an_upload_of_a_kind_not_allowed_is_refused_at_start(
    gql: GQL,
    token: str,
    workspace: Workspace,
    collection: Collection,
    content_type: str,
    allowed: list[str],
) -> None:
    workspace.media_settings = {"allowedKinds": allowed}
    workspace.save()
    result = _start(gql, token, collection, content_type, 10)
    assert [(e["code"], e["path"]) for e in result["errors"]] == [
        ("KIND_NOT_ALLOWED", ["contentType"])
    ]
    assert not Asset.objects.exists()
    assert not Event.objects.filter(type="asset.created").exists()


@pytest.mark.django_db
def test_the_job_refuses_bytes_of_a_kind_not_allowed(
    gql: GQL,
    token: str,
    workspace: Workspace,
    collection: Collection,
    django_capture_on_commit_callbacks: Any,
    tmp_path: Path,
) -> None:
    # Announced as anything (allowed), the bytes are a PDF (not allowed).
    workspace.media_settings = {"allowedKinds": ["image", "other"]}
    workspace.save()
    content = corpus.pdf(tmp_path / "x.pdf", ["Hello"], title="T", author="A").read_bytes()
    kind = "application/octet-stream"
    asset_id, target = upload(gql, token, collection, content, content_type=kind, filename="blob")
    _post(target, content, kind)
    complete(gql, token, asset_id, django_capture_on_commit_callbacks)
    asset = gql(ASSET, {"id": asset_id}, token)["data"]["asset"]
    assert (asset["state"], asset["failure"]["code"]) == ("FAILED", "KIND_NOT_ALLOWED")
    job = Job.objects.get()
    assert (job.state, job.error["code"]) == (JobState.FAILED, "KIND_NOT_ALLOWED")  # type: ignore[index]
    assert not Rendition.objects.exists()


@pytest.mark.django_db
def test_the_workspace_presets_make_the_renditions(
    gql: GQL,
    token: str,
    workspace: Workspace,
    collection: Collection,
    django_capture_on_commit_callbacks: Any,
) -> None:
    workspace.media_settings = {
        "presets": [{"name": "square-64", "maxSide": 64, "format": "png", "quality": 85}]
    }
    workspace.save()
    content = media.jpeg(640, 480)
    asset_id, target = upload(gql, token, collection, content)
    _post(target, content, "image/jpeg")
    complete(gql, token, asset_id, django_capture_on_commit_callbacks)
    asset = gql(ASSET, {"id": asset_id}, token)["data"]["asset"]
    assert [(r["preset"], r["format"], r["width"], r["height"]) for r in asset["renditions"]] == [
        ("square-64", "png", 64, 48)
    ]


@pytest.mark.django_db
def test_gps_is_kept_only_where_allowed_and_a_duplicate_is_not_copied_across(
    gql: GQL,
    token: str,
    workspace: Workspace,
    collection: Collection,
    django_capture_on_commit_callbacks: Any,
    tmp_path: Path,
) -> None:
    content = corpus.jpeg(tmp_path / "gps.jpg", 320, 240, gps=(48.8584, 2.2945)).read_bytes()

    def processed() -> dict[str, Any]:
        asset_id, target = upload(gql, token, collection, content)
        _post(target, content, "image/jpeg")
        complete(gql, token, asset_id, django_capture_on_commit_callbacks)
        return dict(gql(ASSET, {"id": asset_id}, token)["data"]["asset"])

    without = processed()
    assert without["state"] == "READY"
    assert "location" not in without["metadata"]
    workspace.media_settings = {"allowGps": True}
    workspace.save()
    # The same bytes, but under other settings: processed, not copied from the first.
    allowed = processed()
    assert allowed["state"] == "READY"
    assert "duplicateOf" not in allowed["metadata"]
    assert allowed["metadata"]["location"]["latitude"] == pytest.approx(48.8584, abs=1e-3)
    assert Asset.objects.filter(state=AssetState.READY).count() == 2
