"""Every list a mutation takes is bounded by its service (or its resolver), which answers in the
payload's `errors` naming it, and changes nothing; enum lists (a token's scopes, the allowed
kinds) keep each value once. A list added to a mutation's input fails
test_every_list_a_mutation_takes_is_bounded until it is bounded and listed here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from graphql import GraphQLInputObjectType, GraphQLInputType, GraphQLList, GraphQLNonNull

from domain.accounts.models import ApiToken, Workspace
from domain.assets.models import Asset, AssetState, MultipartUpload
from domain.common.ids import global_id
from domain.jobs.models import Job
from schema import schema
from tests import factories
from tests.conftest import GQL

# Each list a mutation's input holds, and what bounds it.
BOUNDED = {
    "AssetMoveInput.assetIds": "1000, editing.MAX_ASSETS_PER_MOVE",
    "AssetsBulkUpdateInput.items": "5000 rows, editing.assets_bulk_update",
    "AssetBulkUpdateItem.tags": "50 tags, editing (as assetUpdate's)",
    "AssetUpdateInput.tags": "50 tags, editing",
    "AssetsReprocessInput.assetIds": "1000, reprocess.MAX_ASSET_IDS",
    "AssetMultipartUploadPartUrlsInput.partNumbers": "1000, multipart.MAX_PART_URLS",
    "AssetMultipartUploadCompleteInput.parts": "10,000, multipart.MAX_PARTS",
    "WorkspaceMediaSettingsUpdateInput.presets": "8, policy.MAX_PRESETS",
    "WorkspaceMediaSettingsUpdateInput.allowedKinds": "each kind once, policy",
    "ApiTokenCreateInput.scopes": "each scope once, accounts.services.api_token_create",
}


def _lists(of_type: GraphQLInputType, seen: set[str], found: set[str]) -> None:
    while isinstance(of_type, (GraphQLNonNull, GraphQLList)):
        of_type = of_type.of_type
    if isinstance(of_type, GraphQLInputObjectType) and of_type.name not in seen:
        seen.add(of_type.name)
        for name, field in of_type.fields.items():
            inner = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
            if isinstance(inner, GraphQLList):
                found.add(f"{of_type.name}.{name}")
            _lists(field.type, seen, found)


def test_every_list_a_mutation_takes_is_bounded() -> None:
    mutation = schema._schema.mutation_type
    assert mutation is not None
    found: set[str] = set()
    for field in mutation.fields.values():
        for arg_name, arg in field.args.items():
            assert not isinstance(arg.type, GraphQLList), arg_name  # lists sit in inputs
            _lists(arg.type, set(), found)
    assert found == set(BOUNDED)


def _errors(body: dict[str, Any], name: str) -> list[tuple[str, list[str] | None]]:
    assert "errors" not in body, body
    return [(e["code"], e["path"]) for e in body["data"][name]["errors"]]


MOVE = """mutation($i: AssetMoveInput!) { assetMove(input: $i) { errors { code path } } }"""
BULK = """mutation($i: AssetsBulkUpdateInput!) { assetsBulkUpdate(input: $i) {
  errors { code path } } }"""
UPDATE = """mutation($i: AssetUpdateInput!) { assetUpdate(input: $i) { errors { code path } } }"""
REPROCESS = """mutation($i: AssetsReprocessInput!) { assetsReprocess(input: $i) {
  errors { code path } } }"""
MEDIA = """mutation($i: WorkspaceMediaSettingsUpdateInput!) {
  workspaceMediaSettingsUpdate(input: $i) { errors { code path } } }"""


@pytest.mark.django_db
def test_the_asset_mutations_lists(gql: GQL, token: str, workspace: Workspace) -> None:
    collection = factories.collection(workspace)
    other = factories.collection(workspace)
    asset = factories.asset(collection, tags=["kept"])
    asset_id = global_id("Asset", asset.pk)

    move = {"assetIds": [asset_id] * 1001, "collectionId": global_id("Collection", other.pk)}
    assert _errors(gql(MOVE, {"i": move}, token), "assetMove") == [("INVALID_INPUT", ["assetIds"])]
    bulk = {"items": [{"id": asset_id, "title": "x"}] * 5001}
    assert _errors(gql(BULK, {"i": bulk}, token), "assetsBulkUpdate") == [
        ("INVALID_INPUT", ["items"])
    ]
    tags = {"id": asset_id, "tags": [f"t{n}" for n in range(51)]}
    assert _errors(gql(UPDATE, {"i": tags}, token), "assetUpdate") == [("INVALID_INPUT", ["tags"])]
    row_tags = {"items": [{"id": asset_id, "tags": [f"t{n}" for n in range(51)]}]}
    bulk_row = gql(
        BULK.replace("errors {", "rowErrors { index code } errors {"), {"i": row_tags}, token
    )
    assert bulk_row["data"]["assetsBulkUpdate"]["rowErrors"] == [
        {"index": 0, "code": "INVALID_INPUT"}
    ]
    # Counted once each (an id repeated is one asset).
    reprocess = {"assetIds": [global_id("Asset", asset.pk + n) for n in range(1001)]}
    assert _errors(gql(REPROCESS, {"i": reprocess}, token), "assetsReprocess") == [
        ("INVALID_INPUT", ["assetIds"])
    ]
    asset.refresh_from_db()
    assert (asset.collection_id, asset.title, asset.tags) == (collection.pk, asset.title, ["kept"])
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_the_accounts_and_settings_lists(gql: GQL, make_token: Any, workspace: Workspace) -> None:
    admin = make_token("read", "write", "admin")
    ws = global_id("Workspace", workspace.pk)
    preset = {"name": "p", "maxSide": 100, "format": "JPEG"}
    presets = [{**preset, "name": f"p{n}"} for n in range(9)]
    refused = gql(MEDIA, {"i": {"workspaceId": ws, "presets": presets}}, admin)
    assert _errors(refused, "workspaceMediaSettingsUpdate") == [("INVALID_INPUT", ["presets"])]
    kinds = {"workspaceId": ws, "allowedKinds": ["IMAGE"] * 10_000}
    assert _errors(gql(MEDIA, {"i": kinds}, admin), "workspaceMediaSettingsUpdate") == []
    settings = gql(
        "query($w: ID!) { workspace(id: $w) { mediaSettings { allowedKinds } } }", {"w": ws}, admin
    )
    assert settings["data"]["workspace"]["mediaSettings"]["allowedKinds"] == ["IMAGE"]

    create = """mutation($i: ApiTokenCreateInput!) { apiTokenCreate(input: $i) {
      errors { code path } } }"""
    scopes = {"workspaceId": ws, "name": "many", "scopes": ["READ"] * 10_000}
    assert _errors(gql(create, {"i": scopes}, admin), "apiTokenCreate") == []
    assert ApiToken.objects.get(name="many").scopes == ["read"]


START = """mutation($i: AssetMultipartUploadStartInput!) { assetMultipartUploadStart(input: $i) {
  asset { id } errors { code } } }"""
URLS = """mutation($i: AssetMultipartUploadPartUrlsInput!) {
  assetMultipartUploadPartUrls(input: $i) { errors { code path } } }"""
COMPLETE = """mutation($i: AssetMultipartUploadCompleteInput!) {
  assetMultipartUploadComplete(input: $i) { job { id } errors { code message path } } }"""


@pytest.mark.django_db
def test_a_multipart_uploads_lists(
    gql: GQL, token: str, workspace: Workspace, media_root: Path
) -> None:
    """A part's number is at most 10,000 (S3's limit), so a list of more parts than that
    names some part twice or one that cannot exist: before, it was read whole (each ETag
    checked, a dict built) and answered UPLOAD_PARTS_MISSING."""
    upload = {
        "collectionId": global_id("Collection", factories.collection(workspace).pk),
        "filename": "talk.mp4",
        "contentType": "video/mp4",
        "size": 10,
    }
    started = gql(START, {"i": upload}, token)["data"]["assetMultipartUploadStart"]
    asset_id = started["asset"]["id"]
    urls = {"assetId": asset_id, "partNumbers": list(range(1, 1002))}
    assert _errors(gql(URLS, {"i": urls}, token), "assetMultipartUploadPartUrls") == [
        ("INVALID_UPLOAD", ["partNumbers"])
    ]
    parts = [{"partNumber": 1, "etag": "e"}] * 10_001
    refused = gql(COMPLETE, {"i": {"assetId": asset_id, "parts": parts}}, token)
    (error,) = refused["data"]["assetMultipartUploadComplete"]["errors"]
    assert (error["code"], error["path"]) == ("INVALID_INPUT", ["parts"])
    assert "`parts` has at most 10,000 items; this one has 10,001." in error["message"]
    assert Asset.objects.get().state == AssetState.AWAITING_UPLOAD
    assert MultipartUpload.objects.count() == 1
    at_limit = gql(COMPLETE, {"i": {"assetId": asset_id, "parts": parts[:10_000]}}, token)
    codes = [e["code"] for e in at_limit["data"]["assetMultipartUploadComplete"]["errors"]]
    assert codes == ["UPLOAD_PARTS_MISSING"]
