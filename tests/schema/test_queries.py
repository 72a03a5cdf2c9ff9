"""Reads: connections, filters, and a constant number of SQL queries for list queries."""

from __future__ import annotations

import base64
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from domain.accounts.models import Workspace
from domain.assets.models import Asset, Collection, Rendition
from domain.common.ids import global_id
from domain.jobs.models import Job, JobState
from domain.jobs.services import job_create
from tests.conftest import GQL

DASHBOARD = """query($w: ID!) {
  collections(workspaceId: $w, first: 20) {
    totalCount
    edges { node { id name assets(first: 10) {
      totalCount edges { node { id title state size renditions { preset width url } } }
    } } }
  }
}"""


def _seed(workspace: Workspace, collections: int, assets: int) -> None:
    for c in range(collections):
        collection = Collection.objects.create(workspace=workspace, name=f"c{c:02}")
        for a in range(assets):
            asset = Asset.objects.create(
                workspace=workspace,
                collection=collection,
                title=f"a{a}",
                original_filename="x.jpg",
                storage_key=f"{workspace.pk}/{c}/{a}",
                declared_content_type="image/jpeg",
                size=3_000_000_000 + a,
            )
            Rendition.objects.create(
                asset=asset,
                preset="thumb-256",
                format="jpeg",
                width=256,
                height=192,
                size=1000,
                storage_key=f"{workspace.pk}/{c}/{a}/thumb",
            )


@pytest.mark.django_db
@pytest.mark.parametrize(("collections", "assets"), [(2, 2), (6, 5)])
def test_the_dashboard_query_costs_the_same_sql_at_any_size(
    gql: GQL, token: str, workspace: Workspace, collections: int, assets: int
) -> None:
    _seed(workspace, collections, assets)
    with CaptureQueriesContext(connection) as queries:
        body = gql(DASHBOARD, {"w": global_id("Workspace", workspace.pk)}, token)
    data = body["data"]["collections"]
    assert data["totalCount"] == collections
    first = data["edges"][0]["node"]["assets"]
    assert first["totalCount"] == assets
    assert first["edges"][0]["node"]["size"] > 2**31  # BigInt, beyond GraphQL's Int
    # token lookup, membership, collections + count, assets + counts, renditions
    assert len(queries) <= 8, [q["sql"] for q in queries]


@pytest.mark.django_db
def test_jobs_filter_by_state_and_kind(gql: GQL, token: str, workspace: Workspace) -> None:
    with mock.patch("domain.jobs.dispatch.send"):
        queued = job_create(
            workspace_id=workspace.pk,
            kind="asset.process",
            parameters={"asset_id": 1},
            created_by_id=None,
        )
        failed = job_create(
            workspace_id=workspace.pk,
            kind="asset.process",
            parameters={"asset_id": 2},
            created_by_id=None,
        )
    Job.objects.filter(pk=failed.pk).update(
        state=JobState.FAILED, error={"code": "X", "message": "m"}
    )
    query = """query($f: JobFilter) { jobs(filters: $f) {
      totalCount edges { node { id state kind lane error { code } } } } }"""

    def ids(filters: dict[str, Any]) -> list[str]:
        result = gql(query, {"f": filters}, token)["data"]["jobs"]
        return [edge["node"]["id"] for edge in result["edges"]]

    assert ids({"state": "FAILED"}) == [global_id("Job", failed.pk)]
    assert ids({"state": "QUEUED", "kind": "asset.process"}) == [global_id("Job", queued.pk)]
    assert ids({"kind": "nothing.like.it"}) == []
    assert ids({"lane": "INTERACTIVE"}) == [
        global_id("Job", failed.pk),
        global_id("Job", queued.pk),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "model"),
    [("asset", "Asset"), ("collection", "Collection"), ("job", "Job"), ("workspace", "Workspace")],
)
def test_one_object_by_id_is_read_without_an_order(
    gql: GQL, token: str, workspace: Workspace, other_workspace: Workspace, field: str, model: str
) -> None:
    _seed(workspace, 1, 1)
    _seed(other_workspace, 1, 1)
    job = job_create(
        workspace_id=workspace.pk, kind="asset.process", parameters={}, created_by_id=None
    )
    own = {
        "Asset": Asset.objects.get(workspace=workspace).pk,
        "Collection": Collection.objects.get(workspace=workspace).pk,
        "Job": job.pk,
        "Workspace": workspace.pk,
    }[model]
    foreign = {
        "Asset": Asset.objects.get(workspace=other_workspace).pk,
        "Collection": Collection.objects.get(workspace=other_workspace).pk,
        "Job": Job.objects.create(workspace=other_workspace, kind="asset.process", lane="x").pk,
        "Workspace": other_workspace.pk,
    }[model]
    document = f"query($id: ID!) {{ {field}(id: $id) {{ id }} }}"
    with CaptureQueriesContext(connection) as queries:
        body = gql(document, {"id": global_id(model, own)}, token)
    assert body["data"][field] == {"id": global_id(model, own)}
    # One key needs no order: none is compiled or sent (the model's ordering would be).
    assert not [q["sql"] for q in queries if "ORDER BY" in q["sql"]]
    body = gql(document, {"id": global_id(model, foreign)}, token)
    assert body == {"data": {field: None}}


@pytest.mark.django_db
def test_one_asset_by_id_still_prefetches_its_renditions_in_order(
    gql: GQL, token: str, workspace: Workspace
) -> None:
    _seed(workspace, 1, 1)
    asset = Asset.objects.get()
    Rendition.objects.create(
        asset=asset,
        preset="preview-1024",
        format="jpeg",
        width=1024,
        height=768,
        size=9,
        storage_key="k2",
    )
    document = "query($id: ID!) { asset(id: $id) { title renditions { preset } } }"
    with CaptureQueriesContext(connection) as queries:
        body = gql(document, {"id": global_id("Asset", asset.pk)}, token)
    assert body["data"]["asset"] == {
        "title": "a0",
        "renditions": [{"preset": "preview-1024"}, {"preset": "thumb-256"}],
    }
    # After admission's (the token, the permissions): the asset, then its renditions, ordered.
    reads = [q["sql"] for q in queries if '"assets_' in q["sql"]]
    assert len(reads) == 2
    assert "ORDER BY" not in reads[0]
    assert 'ORDER BY "assets_rendition"."preset"' in reads[1]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw",
    ["Nope:1", "Viewer:1", "Event:1", "Asset:abc", "Asset:²", "Asset:", "Asset:" + "9" * 20],
)
def test_an_id_that_names_nothing_we_have_reads_as_a_missing_one(
    gql: GQL, token: str, workspace: Workspace, raw: str
) -> None:
    nothing = base64.b64encode(raw.encode()).decode()
    mine = global_id("Workspace", workspace.pk)
    one = gql("query($id: ID!) { node(id: $id) { id } }", {"id": nothing}, token)
    assert one == {"data": {"node": None}}
    many = gql("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [mine, nothing]}, token)
    assert many == {"data": {"nodes": [{"id": mine}, None]}}


def _digits(pk: int, how: str) -> str:
    if how == "other-script":  # int() reads these as the key's digits
        return "".join(chr(0x0660 + int(digit)) for digit in str(pk))
    if how == "spaced":
        return f" {pk} "
    if how == "superscript":
        return "\u00b2"
    return "9" * 20  # past a bigint


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["other-script", "spaced", "superscript", "too-long"])
def test_ids_in_filters_and_mutations_are_keys_of_ascii_digits_or_nothing(
    gql: GQL, token: str, workspace: Workspace, how: str
) -> None:
    collection = Collection.objects.create(workspace=workspace, name="c")
    key = _digits(collection.pk, how)
    odd = base64.b64encode(f"Collection:{key}".encode()).decode()
    user = base64.b64encode(f"User:{key}".encode()).decode()
    assets = gql(
        "query($c: ID!) { assets(filters: {collectionId: $c}) { totalCount } }", {"c": odd}, token
    )
    assert assets == {"data": {"assets": {"totalCount": 0}}}
    jobs = gql(
        "query($u: ID!) { jobs(filters: {createdBy: $u}) { totalCount } }", {"u": user}, token
    )
    assert jobs == {"data": {"jobs": {"totalCount": 0}}}
    delete = "mutation($i: DeleteInput!) { collectionDelete(input: $i) { errors { code } } }"
    refused = gql(delete, {"i": {"id": odd}}, token)["data"]["collectionDelete"]
    assert refused["errors"] == [{"code": "NOT_FOUND"}]
    assert Collection.objects.filter(pk=collection.pk).exists()
