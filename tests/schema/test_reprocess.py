"""assetsReprocess: a parent job in the bulk lane queues one bulk child per asset, and the
children process READY assets again under the workspace's current settings.

The jobs run in-process (runner.execute); dispatch to the broker is patched out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest

from domain.accounts.actor import Actor
from domain.accounts.models import User, Workspace
from domain.accounts.services import workspace_create
from domain.assets import reprocess, storage
from domain.assets.errors import InvalidAssetInput
from domain.assets.models import Asset, AssetState, Collection, Rendition
from domain.assets.processing import METADATA_VERSION
from domain.common.ids import global_id
from domain.jobs import runner
from domain.jobs.models import Job, JobState, Lane
from tests import factories, media
from tests.conftest import GQL
from tests.schema.test_uploads import ASSET, _post, complete, upload

REPROCESS = """mutation($i: AssetsReprocessInput!) {
  assetsReprocess(input: $i) { job { id kind lane state } errors { code message path } }
}"""


@pytest.fixture
def collection(workspace: Workspace) -> Collection:
    return Collection.objects.create(workspace=workspace, name="Photos")


@pytest.fixture(autouse=True)
def no_broker() -> Iterator[None]:
    with mock.patch("domain.jobs.dispatch.send"):
        yield


def _reprocess(gql: GQL, token: str, **filters: Any) -> dict[str, Any]:
    return dict(gql(REPROCESS, {"i": filters}, token)["data"]["assetsReprocess"])


def _run_queued() -> list[Job]:
    """Run queued jobs, oldest first, until none is left (children are queued by parents)."""
    ran: list[Job] = []
    while job := Job.objects.filter(state=JobState.QUEUED).order_by("pk").first():
        runner.execute(job.pk)
        ran.append(Job.objects.get(pk=job.pk))
    return ran


def _ready_asset(gql: GQL, token: str, collection: Collection, captured: Any, **size: int) -> str:
    content = media.jpeg(size.get("width", 640), size.get("height", 480))
    asset_id, target = upload(gql, token, collection, content)
    _post(target, content, "image/jpeg")
    complete(gql, token, asset_id, captured)
    return asset_id


@pytest.mark.django_db
def test_reprocessing_a_collection_makes_new_renditions_in_the_bulk_lane(
    gql: GQL,
    token: str,
    workspace: Workspace,
    collection: Collection,
    django_capture_on_commit_callbacks: Any,
) -> None:
    captured = django_capture_on_commit_callbacks
    first = _ready_asset(gql, token, collection, captured)
    second = _ready_asset(gql, token, collection, captured, width=800)
    factories.asset(collection, state=AssetState.AWAITING_UPLOAD)  # nothing to reprocess yet
    old_keys = set(Rendition.objects.values_list("storage_key", flat=True))
    workspace.media_settings = {
        "presets": [{"name": "square-64", "maxSide": 64, "format": "png", "quality": 85}]
    }
    workspace.save()
    Job.objects.all().delete()

    result = _reprocess(gql, token, collectionId=global_id("Collection", collection.pk))

    assert result["errors"] == []
    assert (result["job"]["kind"], result["job"]["lane"]) == ("asset.reprocess", "BULK")
    ran = _run_queued()
    parent = ran[0]
    assert parent.state == JobState.SUCCEEDED
    assert parent.result == {"queued": 2, "skipped": 0}
    children = list(Job.objects.filter(parent=parent))
    assert {(c.kind, c.lane, c.state) for c in children} == {
        ("asset.reprocess.item", Lane.BULK, JobState.SUCCEEDED)
    }
    for asset_id in (first, second):
        asset = gql(ASSET, {"id": asset_id}, token)["data"]["asset"]
        assert asset["state"] == "READY"
        assert [r["preset"] for r in asset["renditions"]] == ["square-64"]
        assert asset["metadata"]["metadataVersion"] == METADATA_VERSION
    # The renditions no preset makes any more are gone from storage, not only from the rows.
    assert not any(storage.object_size(key) for key in old_keys)


@pytest.mark.django_db
def test_older_than_version_picks_only_assets_processed_before(
    gql: GQL, token: str, collection: Collection
) -> None:
    old = factories.asset(collection, metadata={"metadataVersion": METADATA_VERSION - 1})
    never = factories.asset(collection, metadata={"width": 10})
    factories.asset(collection, metadata={"metadataVersion": METADATA_VERSION})
    failed = factories.asset(collection, state=AssetState.FAILED, metadata={})
    factories.asset(collection, state=AssetState.DELETING, metadata={})

    result = _reprocess(
        gql, token, collectionId=global_id("Collection", collection.pk), olderThanVersion=True
    )
    assert result["errors"] == []
    parent = Job.objects.get(kind="asset.reprocess")
    runner.execute(parent.pk)
    children = Job.objects.filter(parent=parent)
    assert sorted(c.parameters["asset_id"] for c in children) == sorted(
        [old.pk, never.pk, failed.pk]
    )
    assert all(c.parameters["force"] for c in children)


@pytest.mark.django_db
def test_a_rerun_of_the_parent_queues_no_child_twice_and_busy_assets_are_skipped(
    gql: GQL, token: str, workspace: Workspace, collection: Collection
) -> None:
    assets = [factories.asset(collection) for _ in range(3)]
    busy = Job.objects.create(
        workspace=workspace,
        kind="asset.process",
        lane=Lane.INTERACTIVE,
        parameters={"asset_id": assets[0].pk},
    )
    ids = [global_id("Asset", a.pk) for a in assets]
    _reprocess(gql, token, assetIds=ids)
    parent = Job.objects.get(kind="asset.reprocess")
    runner.execute(parent.pk)
    parent.refresh_from_db()
    assert parent.result == {"queued": 2, "skipped": 1}
    # As if its worker died after queueing the children: another run of the same parent.
    Job.objects.filter(pk=parent.pk).update(state=JobState.QUEUED)
    runner.execute(parent.pk)
    children = Job.objects.filter(parent=parent)
    assert sorted(c.parameters["asset_id"] for c in children) == [assets[1].pk, assets[2].pk]
    assert Job.objects.filter(pk=busy.pk, state=JobState.QUEUED).exists()


@pytest.mark.django_db
def test_the_same_idempotency_key_returns_the_same_job(
    gql: GQL, token: str, collection: Collection
) -> None:
    factories.asset(collection)
    filters = {"collectionId": global_id("Collection", collection.pk), "idempotencyKey": "k1"}
    first = _reprocess(gql, token, **filters)
    again = _reprocess(gql, token, **filters)
    assert first["job"]["id"] == again["job"]["id"]
    assert Job.objects.filter(kind="asset.reprocess").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("filters", "code", "path"),
    [
        ({}, "INVALID_INPUT", None),
        ({"assetIds": []}, "INVALID_INPUT", None),
        ({"assetIds": [global_id("Asset", 987654)]}, "NOT_FOUND", ["assetIds"]),
        ({"collectionId": global_id("Asset", 1)}, "NOT_FOUND", ["collectionId"]),
    ],
    ids=["nothing", "no-assets", "missing-asset", "wrong-type"],
)
def test_an_unusable_selection_is_refused_and_starts_nothing(
    gql: GQL, token: str, filters: dict[str, Any], code: str, path: list[str] | None
) -> None:
    result = _reprocess(gql, token, **filters)
    assert [(e["code"], e["path"]) for e in result["errors"]] == [(code, path)]
    assert result["job"] is None
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_assets_of_two_workspaces_are_refused(
    owner: User, workspace: Workspace, collection: Collection
) -> None:
    second = workspace_create(name="Second", slug="second", owner=owner)
    ours = factories.asset(collection)
    theirs = factories.asset(factories.collection(second))
    with pytest.raises(InvalidAssetInput):
        reprocess.assets_reprocess(actor=Actor(user=owner), asset_ids=[ours.pk, theirs.pk])
    with pytest.raises(InvalidAssetInput):
        reprocess.assets_reprocess(
            actor=Actor(user=owner), collection_id=collection.pk, workspace_id=second.pk
        )
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_viewer_may_not_reprocess(
    gql: GQL, make_token: Callable[..., str], viewer_user: Any, collection: Collection
) -> None:
    factories.asset(collection)
    token = make_token("read", "write", user=viewer_user)
    result = _reprocess(gql, token, collectionId=global_id("Collection", collection.pk))
    assert result["errors"][0]["code"] == "FORBIDDEN"
    assert not Job.objects.exists()
    assert Asset.objects.get().state == AssetState.READY
