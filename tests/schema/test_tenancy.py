"""Every entry point, given another workspace's ids, answers exactly as for ids that do not
exist, and changes nothing. Every mutation refuses a read-only token.

The table must name every root field of the schema: a new query or mutation that is not added
here fails `test_every_entry_point_is_covered`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.db.models import Q

from domain.accounts.models import ApiToken, Role, TokenScope, User, Workspace
from domain.accounts.services import api_token_create, membership_add
from domain.assets.models import Asset
from domain.common.ids import global_id
from domain.jobs.models import Job
from schema import schema
from schema.types.scoping import _filtered_by
from tests import factories
from tests.conftest import GQL
from tests.support.cache import clear_cache

MISSING = 987_654


@dataclass
class World:
    ids: dict[str, int]  # type name -> a pk in the *other* workspace


@pytest.fixture
def foreign(other_workspace: Workspace, stranger: User, make_user: Callable[..., User]) -> World:
    collection = factories.collection(other_workspace, "Theirs")
    asset = factories.asset(collection)
    # Loaded as an asset's renditions they need no filter of their own; by id they do.
    rendition = factories.rendition(asset)
    job = Job.objects.create(
        workspace=other_workspace,
        kind="asset.process",
        lane="interactive",
        state="FAILED",
        parameters={"asset_id": asset.pk},
    )
    token, _ = api_token_create(
        workspace=other_workspace, user=stranger, name="t", scopes=[TokenScope.READ]
    )
    member = make_user("their-member")
    membership_add(workspace=other_workspace, user=member, role=Role.VIEWER)
    return World(
        ids={
            "Workspace": other_workspace.pk,
            "Collection": collection.pk,
            "Asset": asset.pk,
            "Rendition": rendition.pk,
            "Job": job.pk,
            "ApiToken": token.pk,
            "User": member.pk,
        }
    )


@dataclass(frozen=True)
class Call:
    document: str
    variables: Callable[[Callable[[str], str]], dict[str, Any]]


def _id(kind: str) -> Callable[[Callable[[str], str]], dict[str, Any]]:
    return lambda ref: {"id": ref(kind)}


PAYLOAD = "errors { code path }"
CALLS: dict[str, Call] = {
    # queries
    "node": Call("query($id: ID!) { node(id: $id) { id } }", _id("Asset")),
    "nodes": Call(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        lambda ref: {"ids": [ref("Asset"), ref("Collection"), ref("Job"), ref("Rendition")]},
    ),
    "workspace": Call("query($id: ID!) { workspace(id: $id) { name } }", _id("Workspace")),
    "collections": Call(
        "query($w: ID!) { collections(workspaceId: $w) { totalCount } }",
        lambda ref: {"w": ref("Workspace")},
    ),
    "collection": Call("query($id: ID!) { collection(id: $id) { name } }", _id("Collection")),
    "assets": Call(
        """query($w: ID, $c: ID) { assets(workspaceId: $w, collectionId: $c) {
                   totalCount } }""",
        lambda ref: {"c": ref("Collection")},
    ),
    "asset": Call("query($id: ID!) { asset(id: $id) { title } }", _id("Asset")),
    "jobs": Call(
        "query($w: ID!) { jobs(workspaceId: $w) { totalCount } }",
        lambda ref: {"w": ref("Workspace")},
    ),
    "job": Call("query($id: ID!) { job(id: $id) { kind } }", _id("Job")),
    "jobStats": Call(
        "query($w: ID!) { jobStats(workspaceId: $w) { windowMinutes } }",
        lambda ref: {"w": ref("Workspace")},
    ),
    "events": Call(
        "query($w: ID!) { events(workspaceId: $w) { sequence } }",
        lambda ref: {"w": ref("Workspace")},
    ),
    "viewer": Call("{ viewer { memberships { workspace { name } } } }", lambda ref: {}),
    "workspaces": Call("{ workspaces { totalCount } }", lambda ref: {}),
    # mutations
    "collectionCreate": Call(
        f"""mutation($w: ID!) {{ collectionCreate(input: {{workspaceId: $w,
        name: "x"}}) {{ collection {{ id }} {PAYLOAD} }} }}""",
        lambda ref: {"w": ref("Workspace")},
    ),
    "collectionUpdate": Call(
        f"""mutation($id: ID!) {{ collectionUpdate(input: {{id: $id,
        name: "y"}}) {{ collection {{ id }} {PAYLOAD} }} }}""",
        _id("Collection"),
    ),
    "collectionDelete": Call(
        f"""mutation($id: ID!) {{ collectionDelete(input: {{id: $id,
        idempotencyKey: "k"}}) {{ job {{ id }} {PAYLOAD} }} }}""",
        _id("Collection"),
    ),
    "assetUploadStart": Call(
        f"""mutation($c: ID!) {{ assetUploadStart(input: {{collectionId: $c,
        filename: "a.png", contentType: "image/png", size: 10}}) {{ asset {{ id }}
        {PAYLOAD} }} }}""",
        lambda ref: {"c": ref("Collection")},
    ),
    "assetUploadComplete": Call(
        f"""mutation($a: ID!) {{ assetUploadComplete(input: {{assetId: $a}})
        {{ job {{ id }} {PAYLOAD} }} }}""",
        lambda ref: {"a": ref("Asset")},
    ),
    "assetMultipartUploadStart": Call(
        f"""mutation($c: ID!) {{ assetMultipartUploadStart(input: {{collectionId: $c,
        filename: "a.mp4", contentType: "video/mp4", size: 10}}) {{ asset {{ id }}
        upload {{ uploadId }} {PAYLOAD} }} }}""",
        lambda ref: {"c": ref("Collection")},
    ),
    "assetMultipartUploadPartUrls": Call(
        f"""mutation($a: ID!) {{ assetMultipartUploadPartUrls(input: {{assetId: $a,
        partNumbers: [1]}}) {{ parts {{ url }} {PAYLOAD} }} }}""",
        lambda ref: {"a": ref("Asset")},
    ),
    "assetMultipartUploadParts": Call(
        f"""mutation($a: ID!) {{ assetMultipartUploadParts(input: {{assetId: $a}})
        {{ parts {{ etag }} missingPartNumbers {PAYLOAD} }} }}""",
        lambda ref: {"a": ref("Asset")},
    ),
    "assetMultipartUploadComplete": Call(
        f"""mutation($a: ID!) {{ assetMultipartUploadComplete(input: {{assetId: $a,
        parts: [{{partNumber: 1, etag: "e"}}]}}) {{ job {{ id }} {PAYLOAD} }} }}""",
        lambda ref: {"a": ref("Asset")},
    ),
    "assetMultipartUploadAbort": Call(
        f"""mutation($a: ID!) {{ assetMultipartUploadAbort(input: {{assetId: $a}})
        {{ deletedAssetId {PAYLOAD} }} }}""",
        lambda ref: {"a": ref("Asset")},
    ),
    "assetRenditionRequest": Call(
        f"""mutation($a: ID!) {{ assetRenditionRequest(input: {{assetId: $a, width: 320,
        format: WEBP}}) {{ rendition {{ url }} job {{ id }} {PAYLOAD} }} }}""",
        lambda ref: {"a": ref("Asset")},
    ),
    "assetUpdate": Call(
        f"""mutation($id: ID!) {{ assetUpdate(input: {{id: $id, title: "z"}})
        {{ asset {{ id }} {PAYLOAD} }} }}""",
        _id("Asset"),
    ),
    "assetMove": Call(
        f"""mutation($a: ID!, $c: ID!) {{ assetMove(input: {{assetIds: [$a],
        collectionId: $c}}) {{ assets {{ id }} {PAYLOAD} }} }}""",
        lambda ref: {"a": ref("Asset"), "c": ref("Collection")},
    ),
    "assetDelete": Call(
        f"""mutation($id: ID!) {{ assetDelete(input: {{id: $id}})
        {{ job {{ id }} {PAYLOAD} }} }}""",
        _id("Asset"),
    ),
    "assetsBulkUpdate": Call(
        """mutation($id: ID!) { assetsBulkUpdate(input: {items: [{id: $id,
        title: "q"}]}) { updatedCount rowErrors { index code } errors { code } } }""",
        _id("Asset"),
    ),
    "workspaceMediaSettingsUpdate": Call(
        f"""mutation($w: ID!) {{ workspaceMediaSettingsUpdate(input: {{workspaceId: $w,
        allowGps: true}}) {{ mediaSettings {{ allowGps }} {PAYLOAD} }} }}""",
        lambda ref: {"w": ref("Workspace")},
    ),
    "assetsReprocess": Call(
        f"""mutation($a: ID!, $c: ID!, $w: ID!) {{ assetsReprocess(input: {{assetIds: [$a],
        collectionId: $c, workspaceId: $w, idempotencyKey: "k"}})
        {{ job {{ id }} {PAYLOAD} }} }}""",
        lambda ref: {"a": ref("Asset"), "c": ref("Collection"), "w": ref("Workspace")},
    ),
    "jobCancel": Call(
        f"""mutation($id: ID!) {{ jobCancel(id: $id) {{ job {{ id }} {PAYLOAD} }} }}""", _id("Job")
    ),
    "jobRetry": Call(
        f"""mutation($id: ID!) {{ jobRetry(id: $id, idempotencyKey: "r")
        {{ job {{ id }} {PAYLOAD} }} }}""",
        _id("Job"),
    ),
    "memberAdd": Call(
        f"""mutation($w: ID!) {{ memberAdd(workspaceId: $w, login: "owner",
        role: OWNER) {{ membership {{ role }} {PAYLOAD} }} }}""",
        lambda ref: {"w": ref("Workspace")},
    ),
    "memberRoleChange": Call(
        f"""mutation($w: ID!, $u: ID!) {{ memberRoleChange(workspaceId: $w,
        userId: $u, role: OWNER) {{ membership {{ role }} {PAYLOAD} }} }}""",
        lambda ref: {"w": ref("Workspace"), "u": ref("User")},
    ),
    "memberRemove": Call(
        f"""mutation($w: ID!, $u: ID!) {{ memberRemove(workspaceId: $w,
        userId: $u) {{ removed {PAYLOAD} }} }}""",
        lambda ref: {"w": ref("Workspace"), "u": ref("User")},
    ),
    "workspaceLeave": Call(
        f"""mutation($w: ID!) {{ workspaceLeave(workspaceId: $w)
        {{ removed {PAYLOAD} }} }}""",
        lambda ref: {"w": ref("Workspace")},
    ),
    "apiTokenCreate": Call(
        f"""mutation($w: ID!) {{ apiTokenCreate(input: {{workspaceId: $w,
        name: "n", scopes: [ADMIN]}}) {{ secret {PAYLOAD} }} }}""",
        lambda ref: {"w": ref("Workspace")},
    ),
    "apiTokenRevoke": Call(
        f"""mutation($id: ID!) {{ apiTokenRevoke(id: $id)
        {{ token {{ id }} {PAYLOAD} }} }}""",
        _id("ApiToken"),
    ),
}
# Take no ids, so there is nothing foreign to give them; covered by test_auth and test_api_*.
WITHOUT_IDS = {"workspaceCreate"}


def _snapshot() -> dict[str, Any]:
    counts: dict[str, Any] = {}
    for model in apps.get_models():
        if model._meta.app_label in {"accounts", "assets", "jobs"}:
            counts[model._meta.label] = sorted(
                json.dumps(row, default=str, sort_keys=True)
                for row in model._default_manager.values()
            )
    return counts


def test_every_entry_point_is_covered() -> None:
    root = schema._schema
    fields = set(root.query_type.fields) | set(root.mutation_type.fields)  # type: ignore[union-attr]
    assert fields - WITHOUT_IDS == set(CALLS)


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(CALLS))
def test_foreign_ids_read_like_missing_ones_and_change_nothing(
    gql: GQL, make_token: Callable[..., str], foreign: World, name: str
) -> None:
    clear_cache()
    token = make_token("read", "write", "admin")
    gql("{ viewer { username } }", token=token)  # stamps last_used_at, once a minute
    call = CALLS[name]
    before = _snapshot()
    answer_foreign = gql(
        call.document, call.variables(lambda kind: global_id(kind, foreign.ids[kind])), token
    )
    assert _snapshot() == before, f"{name} changed something in another workspace"
    answer_missing = gql(
        call.document, call.variables(lambda kind: global_id(kind, MISSING)), token
    )
    assert answer_foreign == answer_missing


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", sorted(n for n in CALLS if CALLS[n].document.startswith("mutation"))
)
def test_a_read_only_token_is_refused_by_every_mutation(
    gql: GQL, make_token: Callable[..., str], workspace: Workspace, owner: User, name: str
) -> None:
    clear_cache()
    collection = factories.collection(workspace)
    asset = factories.asset(collection)
    job = Job.objects.create(
        workspace=workspace, kind="asset.process", lane="interactive", state="FAILED", parameters={}
    )
    token_row = ApiToken.objects.create(
        workspace=workspace,
        user=owner,
        name="x",
        prefix="x",
        secret_hash="x" * 64,
        scopes=["write"],
    )
    own = {
        "Workspace": workspace.pk,
        "Collection": collection.pk,
        "Asset": asset.pk,
        "Job": job.pk,
        "ApiToken": token_row.pk,
        "User": owner.pk,
    }
    read_only = make_token("read")
    before = _snapshot()
    call = CALLS[name]
    body = gql(call.document, call.variables(lambda kind: global_id(kind, own[kind])), read_only)
    payload = next(iter(body["data"].values()))
    assert payload["errors"][0]["code"] == "FORBIDDEN", body
    after = _snapshot()
    # Using the token touches its last_used_at; nothing else may change.
    after.pop("accounts.ApiToken")
    before.pop("accounts.ApiToken")
    assert after == before


@pytest.mark.django_db
def test_a_type_skips_only_its_own_workspace_filter(
    workspace: Workspace, other_workspace: Workspace
) -> None:
    """scoped_to_workspaces leaves out its filter only when the very same one is there."""
    mine, both = [workspace.pk], [workspace.pk, other_workspace.pk]
    assert _filtered_by(Asset.objects.filter(workspace_id__in=mine), "workspace_id", mine)
    assert _filtered_by(
        Asset.objects.filter(workspace_id__in=mine).filter(pk=1), "workspace_id", mine
    )
    assert not _filtered_by(Asset.objects.filter(workspace_id__in=both), "workspace_id", mine)
    assert not _filtered_by(Asset.objects.exclude(workspace_id__in=mine), "workspace_id", mine)
    assert not _filtered_by(
        Asset.objects.filter(Q(workspace_id__in=mine) | Q(pk=1)), "workspace_id", mine
    )
    assert not _filtered_by(Asset.objects.filter(collection_id__in=mine), "workspace_id", mine)
    assert not _filtered_by(
        Asset.objects.filter(collection__workspace_id__in=mine), "workspace_id", mine
    )
    assert not _filtered_by(Asset.objects.all(), "workspace_id", mine)
