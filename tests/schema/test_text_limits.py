"""Free text taken from the API has a length limit below the body limit, enforced by the
domain services: over it, INVALID_INPUT naming the field (`path`) and the limit (`message`),
and nothing written or cut short."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from domain.accounts.models import ApiToken, User, Workspace
from domain.assets.models import Asset, Collection
from domain.common.ids import global_id
from domain.jobs.models import Event
from tests import factories
from tests.conftest import GQL


def _session(user: User) -> GQL:
    client = Client()
    client.force_login(user)
    return GQL(client)


def _call(gql: GQL, document: str, variables: dict[str, Any], token: str | None = None) -> Any:
    return next(iter(gql(document, variables, token)["data"].values()))


def _refused(payload: Any, path: list[str], limit: int) -> None:
    (error,) = payload["errors"]
    assert error["code"] == "INVALID_INPUT", error
    assert error["path"] == path
    assert f"at most {limit:,} characters" in error["message"], error["message"]


@pytest.fixture
def photos(workspace: Workspace) -> Collection:
    return factories.collection(workspace, "Photos")


COLLECTION_CREATE = """mutation($i: CollectionCreateInput!) { collectionCreate(input: $i) {
  collection { name } errors { code message path } } }"""
COLLECTION_UPDATE = """mutation($i: CollectionUpdateInput!) { collectionUpdate(input: $i) {
  collection { name } errors { code message path } } }"""


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "limit"), [("name", 200), ("description", 10_000)], ids=["name", "description"]
)
def test_a_collections_text(
    gql: GQL, token: str, workspace: Workspace, photos: Collection, field: str, limit: int
) -> None:
    ws = global_id("Workspace", workspace.pk)
    fields = {"name": "Long", "description": "", field: "x" * (limit + 1)}
    _refused(
        _call(gql, COLLECTION_CREATE, {"i": {"workspaceId": ws, **fields}}, token), [field], limit
    )
    update = {"id": global_id("Collection", photos.pk), field: "y" * (limit + 1)}
    _refused(_call(gql, COLLECTION_UPDATE, {"i": update}, token), [field], limit)
    assert list(Collection.objects.values_list("name", "description")) == [("Photos", "")]
    at_limit = {"name": "At limit", "description": "", field: "z" * limit}
    assert (
        _call(gql, COLLECTION_CREATE, {"i": {"workspaceId": ws, **at_limit}}, token)["errors"] == []
    )


ASSET_UPDATE = """mutation($i: AssetUpdateInput!) { assetUpdate(input: $i) {
  asset { title } errors { code message path } } }"""
BULK = """mutation($i: AssetsBulkUpdateInput!) { assetsBulkUpdate(input: $i) {
  rowErrors { index code message path } errors { code } } }"""


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "limit"), [("title", 300), ("description", 10_000)], ids=["title", "description"]
)
def test_an_assets_text(gql: GQL, token: str, photos: Collection, field: str, limit: int) -> None:
    asset = factories.asset(photos, title="Keep")
    asset_id = global_id("Asset", asset.pk)
    too_long = "x" * (limit + 1)
    _refused(
        _call(gql, ASSET_UPDATE, {"i": {"id": asset_id, field: too_long}}, token), [field], limit
    )
    rows = [{"id": asset_id, "title": "Fine"}, {"id": asset_id, field: too_long}]
    bulk = _call(gql, BULK, {"i": {"items": rows, "errorPolicy": "ALL_OR_NOTHING"}}, token)
    (row,) = bulk["rowErrors"]
    assert (row["index"], row["code"], row["path"]) == (1, "INVALID_INPUT", [field])
    assert f"at most {limit:,} characters" in row["message"]
    asset.refresh_from_db()
    assert (asset.title, asset.description) == ("Keep", "")
    at_limit = _call(gql, ASSET_UPDATE, {"i": {"id": asset_id, field: "z" * limit}}, token)
    assert at_limit["errors"] == []


UPLOAD_START = """mutation($i: AssetUploadStartInput!) { assetUploadStart(input: $i) {
  asset { id } errors { code message path } } }"""
MULTIPART_START = """mutation($i: AssetMultipartUploadStartInput!) {
  assetMultipartUploadStart(input: $i) { asset { id } errors { code message path } } }"""


@pytest.mark.django_db
@pytest.mark.parametrize("document", [UPLOAD_START, MULTIPART_START], ids=["single", "multipart"])
@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [
        ("filename", "x" * 252 + ".jpg", 255),  # was cut to 255 characters
        ("title", "x" * 301, 300),  # was cut to 300
        ("contentType", "image/" + "x" * 115, 120),  # was cut to 120, or failed
    ],
    ids=["filename", "title", "contentType"],
)
def test_an_uploads_text(
    gql: GQL, token: str, photos: Collection, document: str, field: str, value: str, limit: int
) -> None:
    upload = {
        "collectionId": global_id("Collection", photos.pk),
        "filename": "a.jpg",
        "contentType": "image/jpeg",
        "size": 10,
        field: value,
    }
    _refused(_call(gql, document, {"i": upload}, token), [field], limit)
    assert not Asset.objects.exists()
    assert not Event.objects.filter(type="asset.created").exists()


@pytest.mark.django_db
def test_a_workspaces_name_and_slug(owner: User) -> None:
    create = """mutation($n: String!, $s: String!) { workspaceCreate(name: $n, slug: $s) {
      workspace { slug } errors { code message path } } }"""
    as_owner = _session(owner)
    _refused(_call(as_owner, create, {"n": "x" * 121, "s": "long-name"}), ["name"], 120)
    _refused(_call(as_owner, create, {"n": "Long slug", "s": "x" * 65}), ["slug"], 64)
    assert not Workspace.objects.exists()


@pytest.mark.django_db
def test_a_tokens_name(owner: User, workspace: Workspace) -> None:
    create = """mutation($i: ApiTokenCreateInput!) { apiTokenCreate(input: $i) {
      token { name } errors { code message path } } }"""
    variables = {
        "i": {
            "workspaceId": global_id("Workspace", workspace.pk),
            "name": "x" * 121,
            "scopes": ["READ"],
        }
    }
    _refused(_call(_session(owner), create, variables), ["name"], 120)
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_an_idempotency_key(gql: GQL, token: str, photos: Collection) -> None:
    """It was refused as IDEMPOTENCY_KEY_REUSED, which says something else."""
    asset = factories.asset(photos)
    delete = """mutation($i: DeleteInput!) { assetDelete(input: $i) {
      job { id } errors { code message path } } }"""
    variables = {"i": {"id": global_id("Asset", asset.pk), "idempotencyKey": "k" * 201}}
    _refused(_call(gql, delete, variables, token), ["idempotencyKey"], 200)
