"""Collections and assets through GraphQL: edit, move, delete, filter, order, bulk, node."""

from __future__ import annotations

import threading
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from domain.accounts.models import User, Workspace
from domain.assets.models import Asset, AssetState, Collection
from domain.common.ids import global_id
from domain.jobs import runner
from domain.jobs.models import Event, Job
from tests import factories
from tests.conftest import GQL


def gid(obj: Any) -> str:
    return global_id(type(obj).__name__, obj.pk)


@pytest.fixture
def photos(workspace: Workspace) -> Collection:
    return factories.collection(workspace, "Photos")


UPDATE = """mutation($i: AssetUpdateInput!) { assetUpdate(input: $i) {
  asset { title tags description customMetadata } errors { code path } } }"""


@pytest.mark.django_db
def test_an_asset_is_edited_and_the_change_is_an_event(
    gql: GQL, token: str, photos: Collection
) -> None:
    asset = factories.asset(photos)
    result = gql(
        UPDATE,
        {
            "i": {
                "id": gid(asset),
                "title": " Sunset ",
                "tags": ["a", "b", "a"],
                "description": "Long",
                "customMetadata": {"sku": 7},
            }
        },
        token,
    )
    assert result["data"]["assetUpdate"] == {
        "asset": {
            "title": "Sunset",
            "tags": ["a", "b"],
            "description": "Long",
            "customMetadata": {"sku": 7},
        },
        "errors": [],
    }
    event = Event.objects.filter(type="asset.updated").get()
    assert event.payload["fields"] == ["custom_metadata", "description", "tags", "title"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"title": " "}, "title"),
        ({"tags": ["x" * 65]}, "tags"),
        ({"customMetadata": [1, 2]}, "customMetadata"),
    ],
)
def test_bad_edits_name_the_field_and_change_nothing(
    gql: GQL, token: str, photos: Collection, change: dict[str, Any], path: str
) -> None:
    asset = factories.asset(photos, title="Keep")
    result = gql(UPDATE, {"i": {"id": gid(asset), **change}}, token)["data"]["assetUpdate"]
    assert result["errors"] == [{"code": "INVALID_INPUT", "path": [path]}]
    asset.refresh_from_db()
    assert asset.title == "Keep"


@pytest.mark.django_db
def test_custom_metadata_merges_keys_and_a_null_removes_one(
    gql: GQL, token: str, photos: Collection
) -> None:
    asset = factories.asset(photos, custom_metadata={"sku": 7, "color": "red", "old": True})
    merge = {"color": "blue", "old": None, "new": [1]}
    result = gql(UPDATE, {"i": {"id": gid(asset), "customMetadataMerge": merge}}, token)
    assert result["data"]["assetUpdate"]["asset"]["customMetadata"] == {
        "sku": 7,
        "color": "blue",
        "new": [1],
    }
    both = {"id": gid(asset), "customMetadata": {}, "customMetadataMerge": {"a": 1}}
    refused = gql(UPDATE, {"i": both}, token)["data"]["assetUpdate"]
    assert refused["errors"] == [{"code": "INVALID_INPUT", "path": ["customMetadataMerge"]}]
    too_big = {"id": gid(asset), "customMetadataMerge": {"blob": "x" * 17_000}}
    refused = gql(UPDATE, {"i": too_big}, token)["data"]["assetUpdate"]
    assert refused["errors"] == [{"code": "INVALID_INPUT", "path": ["customMetadataMerge"]}]
    asset.refresh_from_db()
    assert asset.custom_metadata == {"sku": 7, "color": "blue", "new": [1]}


@pytest.mark.django_db
def test_bulk_merges_apply_in_row_order_to_each_assets_own_metadata(
    gql: GQL, token: str, photos: Collection
) -> None:
    first = factories.asset(photos, custom_metadata={"sku": 1})
    second = factories.asset(photos, custom_metadata={"sku": 2, "drop": "me"})
    items = [
        {"id": gid(first), "customMetadataMerge": {"batch": "a"}},
        {"id": gid(second), "customMetadataMerge": {"batch": "a", "drop": None}},
        {"id": gid(first), "customMetadataMerge": {"batch": "b", "seen": 2}},
    ]
    result = gql(BULK, {"i": {"items": items}}, token)["data"]["assetsBulkUpdate"]
    assert result == {"updatedCount": 3, "rowErrors": [], "errors": []}
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.custom_metadata == {"sku": 1, "batch": "b", "seen": 2}
    assert second.custom_metadata == {"sku": 2, "batch": "a"}


@pytest.mark.django_db
def test_assets_move_between_collections_of_one_workspace_only(
    gql: GQL, token: str, photos: Collection, other_workspace: Workspace
) -> None:
    target = factories.collection(photos.workspace, "Archive")
    theirs = factories.collection(other_workspace, "Theirs")
    assets = [factories.asset(photos) for _ in range(3)]
    move = """mutation($i: AssetMoveInput!) { assetMove(input: $i) {
      assets { collection { name } } errors { code } } }"""
    moved = gql(
        move, {"i": {"assetIds": [gid(a) for a in assets], "collectionId": gid(target)}}, token
    )["data"]["assetMove"]
    assert [a["collection"]["name"] for a in moved["assets"]] == ["Archive"] * 3
    refused = gql(move, {"i": {"assetIds": [gid(assets[0])], "collectionId": gid(theirs)}}, token)[
        "data"
    ]["assetMove"]
    assert refused["errors"] == [{"code": "NOT_FOUND"}]
    assert Asset.objects.filter(collection=target).count() == 3
    # An asset named twice moves once: one event, one entry in the payload.
    twice = [gid(assets[0]), gid(assets[0])]
    again = gql(move, {"i": {"assetIds": twice, "collectionId": gid(photos)}}, token)
    assert again["data"]["assetMove"]["assets"] == [{"collection": {"name": photos.name}}]
    moved_back = Event.objects.filter(type="asset.moved", payload__collectionId=gid(photos))
    assert moved_back.count() == 1


@pytest.mark.django_db
def test_moving_many_assets_reads_them_at_once(
    gql: GQL, token: str, photos: Collection, other_workspace: Workspace
) -> None:
    """assetMove read its assets one by one (a statement per id, up to 1,000 per call); now
    its statements do not grow with the ids. Another workspace's asset among them is NOT_FOUND
    at `assetIds`, as a missing one, and nothing moves."""
    target = factories.collection(photos.workspace, "Archive")
    move = """mutation($i: AssetMoveInput!) { assetMove(input: $i) {
      assets { id } errors { code path } } }"""

    def statements(count: int, to: Collection) -> int:
        ids = [gid(factories.asset(photos)) for _ in range(count)]
        with CaptureQueriesContext(connection) as queries:
            answer = gql(move, {"i": {"assetIds": ids, "collectionId": gid(to)}}, token)
        assert answer["data"]["assetMove"]["errors"] == [], answer
        assert [a["id"] for a in answer["data"]["assetMove"]["assets"]] == ids
        return len(queries.captured_queries)

    statements(1, target)  # the token's first use: its lookup and last_used_at
    assert statements(40, target) == statements(2, target)
    theirs = factories.asset(factories.collection(other_workspace))
    mine = factories.asset(photos)
    refused = gql(
        move, {"i": {"assetIds": [gid(mine), gid(theirs)], "collectionId": gid(target)}}, token
    )["data"]["assetMove"]
    assert refused == {"assets": None, "errors": [{"code": "NOT_FOUND", "path": ["assetIds"]}]}
    mine.refresh_from_db()
    assert mine.collection_id == photos.pk


@pytest.mark.django_db
def test_deleting_an_asset_removes_it_through_a_job(
    gql: GQL, token: str, photos: Collection, django_capture_on_commit_callbacks: Any
) -> None:
    asset = factories.asset(photos)
    factories.rendition(asset)
    delete = """mutation($i: DeleteInput!) { assetDelete(input: $i) {
      job { id kind state } errors { code } } }"""
    with mock.patch("domain.jobs.dispatch.send"), django_capture_on_commit_callbacks(execute=True):
        result = gql(delete, {"i": {"id": gid(asset)}}, token)["data"]["assetDelete"]
    assert result["job"]["kind"] == "asset.delete"
    assert Asset.objects.get().state == AssetState.DELETING
    with mock.patch("domain.assets.storage.delete_objects") as delete_objects:
        runner.execute(Job.objects.get().pk)
    delete_objects.assert_called_once()
    assert sorted(delete_objects.call_args.args[0]) == sorted(
        [asset.storage_key, f"{asset.storage_key}/thumb-256"]
    )
    assert not Asset.objects.exists()
    assert Event.objects.filter(type="asset.deleted").count() == 1


@pytest.mark.django_db
def test_an_idempotency_key_returns_the_first_job_and_refuses_other_input(
    gql: GQL, token: str, photos: Collection
) -> None:
    first, second = factories.asset(photos), factories.asset(photos)
    delete = (
        """mutation($i: DeleteInput!) { assetDelete(input: $i) { job { id } errors { code } } }"""
    )
    with mock.patch("domain.jobs.dispatch.send"):
        a = gql(delete, {"i": {"id": gid(first), "idempotencyKey": "k-1"}}, token)
        b = gql(delete, {"i": {"id": gid(first), "idempotencyKey": "k-1"}}, token)
        c = gql(delete, {"i": {"id": gid(second), "idempotencyKey": "k-1"}}, token)
    assert a["data"]["assetDelete"]["job"]["id"] == b["data"]["assetDelete"]["job"]["id"]
    assert c["data"]["assetDelete"] == {"job": None, "errors": [{"code": "IDEMPOTENCY_KEY_REUSED"}]}
    assert Job.objects.count() == 1
    assert Asset.objects.get(pk=second.pk).state == AssetState.READY


@pytest.mark.django_db
def test_a_repeated_key_answers_only_a_caller_who_may_start_the_work(
    gql: GQL, token: str, photos: Collection, viewer_user: User
) -> None:
    """A repeat returns the first request's result without running the service: it must not
    hand a viewer what only an editor may do, nor tell it that the key was used."""
    asset = factories.asset(photos)
    delete = "mutation($i: DeleteInput!) { assetDelete(input: $i) { job { id } errors { code } } }"
    with mock.patch("domain.jobs.dispatch.send"):
        first = gql(delete, {"i": {"id": gid(asset), "idempotencyKey": "k-1"}}, token)
    assert first["data"]["assetDelete"]["errors"] == []
    viewer = Client()
    viewer.force_login(viewer_user)
    for key, target in (("k-1", asset), ("k-1", factories.asset(photos)), ("k-2", asset)):
        again = GQL(viewer)(delete, {"i": {"id": gid(target), "idempotencyKey": key}})
        assert again["data"]["assetDelete"] == {"job": None, "errors": [{"code": "FORBIDDEN"}]}
    assert Job.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_repeats_of_a_key_start_one_job(
    gql: GQL, token: str, photos: Collection
) -> None:
    asset = factories.asset(photos)
    factories.rendition(asset)
    Asset.objects.filter(pk=asset.pk).update(state=AssetState.FAILED)
    job = Job.objects.create(
        workspace=photos.workspace,
        kind="asset.process",
        lane="interactive",
        state="FAILED",
        parameters={"asset_id": asset.pk},
    )
    retry = """mutation($id: ID!, $k: String) { jobRetry(id: $id, idempotencyKey: $k) {
      job { id attempts } errors { code } } }"""
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(4)

    def repeat() -> None:
        barrier.wait()
        results.append(gql(retry, {"id": gid(job), "k": "same"}, token))
        connection.close()

    with mock.patch("domain.jobs.dispatch.send") as send:
        threads = [threading.Thread(target=repeat) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert all(r["data"]["jobRetry"]["errors"] == [] for r in results), results
    assert send.call_count == 1
    assert Event.objects.filter(type="job.retried").count() == 1


BULK = """mutation($i: AssetsBulkUpdateInput!) { assetsBulkUpdate(input: $i) {
  updatedCount rowErrors { index code path } errors { code } } }"""


@pytest.mark.django_db
def test_a_bulk_update_of_a_thousand_rows_is_a_few_statements(
    gql: GQL, token: str, photos: Collection
) -> None:
    assets = Asset.objects.bulk_create(
        [
            Asset(
                workspace=photos.workspace,
                collection=photos,
                title=f"t{n}",
                original_filename="f",
                storage_key=f"k/{n}",
                declared_content_type="image/png",
                size=1,
            )
            for n in range(1000)
        ]
    )
    items = [
        {"id": gid(a), "tags": ["bulk"], "customMetadata": {"n": n}} for n, a in enumerate(assets)
    ]
    with CaptureQueriesContext(connection) as queries:
        result = gql(BULK, {"i": {"items": items}}, token)["data"]["assetsBulkUpdate"]
    assert result == {"updatedCount": 1000, "rowErrors": [], "errors": []}
    assert Asset.objects.filter(tags__contains=["bulk"]).count() == 1000
    assert Event.objects.filter(type="asset.updated").count() == 1000
    assert len(queries) < 20


@pytest.mark.django_db
def test_bulk_error_policies(
    gql: GQL, token: str, photos: Collection, other_workspace: Workspace
) -> None:
    mine = [factories.asset(photos, title="old") for _ in range(3)]
    theirs = factories.asset(factories.collection(other_workspace))
    items = [
        {"id": gid(mine[0]), "title": "new"},
        {"id": gid(theirs), "title": "stolen"},
        {"id": gid(mine[1]), "title": ""},
        {"id": global_id("Job", mine[0].pk), "title": "x"},
        {"id": gid(mine[2]), "title": "new"},
    ]
    strict = gql(BULK, {"i": {"items": items}}, token)["data"]["assetsBulkUpdate"]
    expected_errors = [
        {"index": 1, "code": "NOT_FOUND", "path": ["id"]},
        {"index": 2, "code": "INVALID_INPUT", "path": ["title"]},
        {"index": 3, "code": "NOT_FOUND", "path": ["id"]},
    ]
    assert strict == {"updatedCount": 0, "rowErrors": expected_errors, "errors": []}
    assert set(Asset.objects.filter(collection=photos).values_list("title", flat=True)) == {"old"}
    lenient = gql(BULK, {"i": {"items": items, "errorPolicy": "APPLY_VALID"}}, token)
    assert lenient["data"]["assetsBulkUpdate"]["updatedCount"] == 2
    assert lenient["data"]["assetsBulkUpdate"]["rowErrors"] == expected_errors
    theirs.refresh_from_db()
    assert theirs.title != "stolen"


@pytest.mark.django_db
def test_assets_filter_and_order(gql: GQL, token: str, photos: Collection) -> None:
    factories.asset(
        photos, title="Red barn", tags=["farm", "red"], size=10, content_type="image/png"
    )
    factories.asset(
        photos, title="Blue sea", tags=["sea"], size=5_000_000_000, content_type="image/jpeg"
    )
    factories.asset(
        photos,
        title="red car",
        tags=["car", "red"],
        size=300,
        content_type="video/mp4",
        state=AssetState.FAILED,
    )
    query = """query($f: AssetFilter, $o: [AssetOrder!]) { assets(filters: $f, ordering: $o) {
      totalCount edges { node { title } } } }"""

    def titles(filters: dict[str, Any], ordering: list[dict[str, str]] | None = None) -> list[str]:
        variables = {"f": filters, "o": ordering} if ordering else {"f": filters, "o": []}
        data = gql(query, variables, token)["data"]["assets"]
        return [edge["node"]["title"] for edge in data["edges"]]

    assert titles({"tag": "red"}, [{"title": "ASC"}]) == ["Red barn", "red car"]
    assert titles({"titleContains": "RED"}, [{"size": "DESC"}]) == ["red car", "Red barn"]
    assert titles({"sizeMin": 1_000_000_000}) == ["Blue sea"]
    assert titles({"sizeMax": 300, "state": "READY"}) == ["Red barn"]
    assert titles({"contentTypePrefix": "image/"}, [{"title": "ASC"}]) == ["Blue sea", "Red barn"]
    assert titles({"collectionId": gid(photos), "contentType": "video/mp4"}) == ["red car"]
    assert titles({"createdAfter": "2999-01-01T00:00:00Z"}) == []


@pytest.mark.django_db
def test_node_and_nodes_see_only_the_callers_workspaces(
    gql: GQL, token: str, photos: Collection, other_workspace: Workspace
) -> None:
    mine = factories.asset(photos, title="Mine")
    theirs = factories.asset(factories.collection(other_workspace), title="Theirs")
    query = """query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Asset { title } } }"""
    data = gql(query, {"ids": [gid(mine), gid(theirs), global_id("Asset", 999_999)]}, token)
    assert data["data"]["nodes"] == [{"id": gid(mine), "title": "Mine"}, None, None]
    one = gql("""query($id: ID!) { node(id: $id) { id } }""", {"id": gid(theirs)}, token)
    assert one["data"]["node"] is None


@pytest.mark.django_db
def test_collections_are_renamed_and_deleted_with_their_assets(
    gql: GQL, token: str, photos: Collection, django_capture_on_commit_callbacks: Any
) -> None:
    factories.collection(photos.workspace, "Taken")
    rename = """mutation($i: CollectionUpdateInput!) { collectionUpdate(input: $i) {
      collection { name description } errors { code path } } }"""
    taken = gql(rename, {"i": {"id": gid(photos), "name": "Taken"}}, token)
    assert taken["data"]["collectionUpdate"]["errors"] == [{"code": "NAME_TAKEN", "path": ["name"]}]
    renamed = gql(rename, {"i": {"id": gid(photos), "description": "Summer"}}, token)
    assert renamed["data"]["collectionUpdate"]["collection"] == {
        "name": "Photos",
        "description": "Summer",
    }
    for _ in range(3):
        factories.asset(photos)
    delete = """mutation($i: DeleteInput!) { collectionDelete(input: $i) { job { kind lane } } }"""
    with mock.patch("domain.jobs.dispatch.send"), django_capture_on_commit_callbacks(execute=True):
        job = gql(delete, {"i": {"id": gid(photos)}}, token)["data"]["collectionDelete"]["job"]
    assert job == {"kind": "collection.delete", "lane": "BULK"}
    with mock.patch("domain.assets.storage.delete_object"):
        runner.execute(Job.objects.get(kind="collection.delete").pk)
    assert not Collection.objects.filter(pk=photos.pk).exists()
    assert not Asset.objects.exists()
