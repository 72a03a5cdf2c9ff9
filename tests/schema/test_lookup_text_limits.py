"""Text a client only looks things up with (a filter's `titleContains`, a member's login, a
part's ETag, the events subscription's types) has a length limit of its own, the longest value
it could match: over it, INVALID_INPUT naming the field and the limit, before the database is
asked anything. Before, only the 2.5 MB request body bounded it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from graphql import GraphQLArgument, get_named_type

from domain.accounts.models import Membership, User, Workspace
from domain.assets.models import Asset, AssetState, MultipartUpload
from domain.common.ids import global_id
from domain.jobs.models import Job
from tests import factories
from tests.conftest import GQL
from tests.realtime.sockets import Socket, run
from tests.schema.lookup_inputs import lookup_inputs, refused


def _refused_before_any_resolver(body: dict[str, Any], path: list[str], limit: int) -> None:
    refused(body, path, f"`{path[-1]}` has at most {limit:,} characters")


# Each filter's free text: (the root field and its filter type, the field, its limit).
FILTERS = [
    ("assets", "AssetFilter", "titleContains", 300),
    ("assets", "AssetFilter", "contentType", 120),
    ("assets", "AssetFilter", "contentTypePrefix", 120),
    ("assets", "AssetFilter", "tag", 64),
    ("collections", "CollectionFilter", "nameContains", 200),
    ("jobs", "JobFilter", "kind", 64),
]
# The same filter on a connection nested in an object: the workspace's collections, a
# collection's assets, a job's children.
NESTED = {
    "assets": "collection(id: $id) { assets(filters: $f) { totalCount } }",
    "collections": "workspace(id: $id) { collections(filters: $f) { totalCount } }",
    "jobs": "job(id: $id) { children(filters: $f) { totalCount } }",
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("root", "filter_type", "field", "limit"), FILTERS, ids=[f[2] for f in FILTERS]
)
def test_a_filters_text(
    gql: GQL, token: str, workspace: Workspace, root: str, filter_type: str, field: str, limit: int
) -> None:
    collection = factories.collection(workspace)
    factories.asset(collection)
    job = Job.objects.create(workspace=workspace, kind="asset.process", lane="interactive")
    parent_id = {
        "assets": global_id("Collection", collection.pk),
        "collections": global_id("Workspace", workspace.pk),
        "jobs": global_id("Job", job.pk),
    }[root]
    listed = f"query($f: {filter_type}) {{ {root}(filters: $f) {{ totalCount }} }}"
    nested = f"query($id: ID!, $f: {filter_type}) {{ {NESTED[root]} }}"
    too_long = "x" * (limit + 1)

    with CaptureQueriesContext(connection) as queries:
        body = gql(listed, {"f": {field: too_long}}, token)
    _refused_before_any_resolver(body, ["filters", field], limit)
    table = {"assets": "assets_asset", "collections": "assets_collection", "jobs": "jobs_job"}
    assert not [q for q in queries if f'"{table[root]}"' in q["sql"]]
    inside = {"AND": {"NOT": {field: too_long}}}
    _refused_before_any_resolver(
        gql(listed, {"f": inside}, token), ["filters", "AND", "NOT", field], limit
    )
    _refused_before_any_resolver(
        gql(nested, {"id": parent_id, "f": {field: too_long}}, token), ["filters", field], limit
    )
    # Written in the document rather than sent as a variable: the same.
    literal = f'{{ {root}(filters: {{OR: {{{field}: "{too_long}"}}}}) {{ totalCount }} }}'
    _refused_before_any_resolver(gql(literal, {}, token), ["filters", "OR", field], limit)

    at_limit = gql(listed, {"f": {field: "z" * limit}}, token)
    assert at_limit["data"] == {root: {"totalCount": 0}}, at_limit


def test_every_text_a_query_or_subscription_looks_up_with_has_a_limit() -> None:
    """A filter field or an argument added later gets a limit too (`text_limit`), or this
    fails. Mutations' text is their services' to check, as for the text they store; a
    connection's `before`/`after` must be a cursor it gave out (schema/limits.py)."""
    from schema.limits import limit_of

    missing = [
        where
        for where, name, definition in lookup_inputs()
        if get_named_type(definition.type).name == "String"
        and limit_of(definition) is None
        and not (isinstance(definition, GraphQLArgument) and name in ("before", "after"))
    ]
    assert missing == []


ADD = """mutation($w: ID!, $l: String!) { memberAdd(workspaceId: $w, login: $l, role: EDITOR) {
  membership { role } errors { code message path } } }"""


@pytest.mark.django_db
def test_a_members_login(owner: User, workspace: Workspace) -> None:
    """A username (150) or an email (254): longer names nobody. It was looked up as sent."""
    client = Client()
    client.force_login(owner)
    gql = GQL(client)
    ws = global_id("Workspace", workspace.pk)
    refused = gql(ADD, {"w": ws, "l": "x" * 255 + "@example.com"})["data"]["memberAdd"]
    (error,) = refused["errors"]
    assert (error["code"], error["path"]) == ("INVALID_INPUT", ["login"])
    assert "at most 254 characters" in error["message"]
    assert Membership.objects.filter(workspace=workspace).count() == 1
    at_limit = gql(ADD, {"w": ws, "l": "y" * 254})["data"]["memberAdd"]
    assert [e["code"] for e in at_limit["errors"]] == ["USER_NOT_FOUND"]


START = """mutation($i: AssetMultipartUploadStartInput!) { assetMultipartUploadStart(input: $i) {
  asset { id } errors { code } } }"""
COMPLETE = """mutation($i: AssetMultipartUploadCompleteInput!) {
  assetMultipartUploadComplete(input: $i) { job { id } errors { code message path } } }"""


@pytest.mark.django_db
def test_a_parts_etag(gql: GQL, token: str, workspace: Workspace, media_root: Path) -> None:
    """An MD5 in hex, quoted: a longer one matches no part, and was echoed whole in the
    message of UPLOAD_PART_MISMATCH (or met UPLOAD_PARTS_MISSING first)."""
    collection = factories.collection(workspace)
    upload = {
        "collectionId": global_id("Collection", collection.pk),
        "filename": "talk.mp4",
        "contentType": "video/mp4",
        "size": 10,
    }
    started = gql(START, {"i": upload}, token)["data"]["assetMultipartUploadStart"]
    assert started["errors"] == []
    asset_id = started["asset"]["id"]

    def complete(etag: str) -> dict[str, Any]:
        parts = [{"partNumber": 1, "etag": etag}]
        body = gql(COMPLETE, {"i": {"assetId": asset_id, "parts": parts}}, token)
        return dict(body["data"]["assetMultipartUploadComplete"])

    refused = complete('"' + "a" * 200 + '"')
    (error,) = refused["errors"]
    assert (error["code"], error["path"]) == ("INVALID_INPUT", ["parts", "1", "etag"])
    assert "`etag` has at most 128 characters" in error["message"]
    assert len(error["message"]) < 200
    assert Asset.objects.get().state == AssetState.AWAITING_UPLOAD
    assert MultipartUpload.objects.count() == 1
    # At the limit it is checked against storage, which has no part yet.
    assert [e["code"] for e in complete("b" * 128)["errors"]] == ["UPLOAD_PARTS_MISSING"]


EVENTS = "subscription($w: ID!, $t: [String!]) { events(workspaceId: $w, types: $t) { type } }"
JOBS = "subscription($w: ID!, $f: JobFilter) { jobs(workspaceId: $w, filters: $f) { id } }"


@pytest.mark.django_db(transaction=True)
def test_a_subscriptions_text(workspace: Workspace, token: str) -> None:
    """Refused as the subscription starts, not at its first event (the jobs filter is applied
    to each changed job); a subscriber also keeps its types while it is open."""
    ws = global_id("Workspace", workspace.pk)
    asked: dict[str, tuple[str, dict[str, Any]]] = {
        "long-type": (EVENTS, {"w": ws, "t": ["job.succeeded", "x" * 65]}),
        "many-types": (EVENTS, {"w": ws, "t": [f"t{n}." for n in range(101)]}),
        "long-kind": (JOBS, {"w": ws, "f": {"kind": "x" * 65}}),
    }

    async def scenario() -> dict[str, Any]:
        socket = Socket()
        await socket.open(token)
        for sub_id, (document, variables) in asked.items():
            await socket.subscribe(sub_id, document, variables)
        return {sub_id: json.loads((await socket.collect(sub_id, 1))[0]) for sub_id in asked}

    frames = run(scenario)
    errors = {}
    for sub_id, frame in frames.items():
        assert frame["type"] == "next", frame
        (errors[sub_id],) = frame["payload"]["errors"]
    assert errors["long-type"]["extensions"] == {"code": "INVALID_INPUT", "inputPath": ["types"]}
    assert "`types` has at most 64 characters" in errors["long-type"]["message"]
    assert errors["many-types"]["extensions"] == {"code": "INVALID_INPUT", "inputPath": ["types"]}
    assert "`types` has at most 100 items; this one has 101" in errors["many-types"]["message"]
    assert errors["long-kind"]["extensions"] == {
        "code": "INVALID_INPUT",
        "inputPath": ["filters", "kind"],
    }
