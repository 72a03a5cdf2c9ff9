"""The uncached read path: plain columns as basic fields, resolvers that need no database run
inline, and single-object queries planned by the optimizer (bench/http/PROFILE.md, third
session)."""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any

import pytest
from asgiref.sync import SyncToAsync, async_to_sync
from django.db import connection
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext
from strawberry_django.fields.base import StrawberryDjangoFieldBase

from domain.accounts.models import Workspace
from domain.assets.models import Asset
from domain.common.ids import global_id
from schema import schema
from schema.types.accounts import ApiTokenType, MembershipType, WorkspaceType
from schema.types.assets import AssetType, CollectionType, RenditionType
from schema.types.fields import DepotField
from schema.types.jobs import JobType
from tests import factories
from tests.conftest import GQL
from tests.support.cache import clear_cache

TYPES = (AssetType, CollectionType, RenditionType, JobType, WorkspaceType, MembershipType)

ASSET = "query($id: ID!) { asset(id: $id) { id title size state renditions { preset width } } }"
DASHBOARD = """query($w: ID!) { collections(workspaceId: $w, first: 20) { edges { node {
  id name assets(first: 10) { edges { node { id title size state renditions { preset width } } } }
} } } }"""


@pytest.fixture(autouse=True)
def _no_read_cache(settings: Any) -> None:
    settings.DEPOT_READ_CACHE_SECONDS = 0
    clear_cache()


def _fields(cls: Any) -> dict[str, Any]:
    return {f.python_name: f for f in cls.__strawberry_definition__.fields}


def test_plain_columns_are_basic_fields_and_everything_else_is_not() -> None:
    asset = _fields(AssetType)
    for name in ("title", "size", "tags", "metadata", "created_at", "state"):
        assert isinstance(asset[name], DepotField), name
        assert asset[name].is_basic_field, name
    # relations, resolvers and relay's id keep strawberry's full per-field path
    for name in ("collection", "renditions", "download_url", "_id"):
        assert not asset[name].is_basic_field, name
    assert not _fields(CollectionType)["assets"].is_basic_field
    assert not _fields(JobType)["parent"].is_basic_field
    assert _fields(RenditionType)["preset"].is_basic_field


def test_the_schema_resolves_plain_columns_without_strawberrys_wrapper() -> None:
    graphql_type: Any = schema._schema.type_map["Asset"]
    assert graphql_type.fields["title"].resolve.__name__ == "_get_basic_result"
    assert graphql_type.fields["renditions"].resolve.__name__ != "_get_basic_result"


def test_in_memory_resolvers_get_no_thread_hop() -> None:
    """`in_memory` relies on strawberry-django's `is_async_safe` marker: if an upgrade drops it,
    every such resolver would hop to a thread per object again."""
    marked = 0
    classes: tuple[Any, ...] = (*TYPES, ApiTokenType)
    for cls in classes:
        for field in cls.__strawberry_definition__.fields:
            resolver = getattr(field, "base_resolver", None)
            if resolver is None or not getattr(resolver.wrapped_func, "is_async_safe", False):
                continue
            assert isinstance(field, StrawberryDjangoFieldBase)
            assert not resolver.is_async
            assert field.safe_resolver is resolver, field.python_name
            marked += 1
    assert marked >= 12


@pytest.mark.django_db
def test_a_deferred_column_is_still_loaded(workspace: Workspace) -> None:
    asset = factories.asset(factories.collection(workspace), title="Deferred")
    deferred = Asset.objects.only("id").get(pk=asset.pk)
    assert "title" not in deferred.__dict__
    field = _fields(AssetType)["title"]
    assert field.get_result(deferred, info=None, args=[], kwargs={}) == "Deferred"


@pytest.mark.django_db
def test_one_asset_is_two_statements_with_only_the_selected_columns(
    gql: GQL, token: str, workspace: Workspace, other_workspace: Workspace
) -> None:
    asset = factories.asset(factories.collection(workspace), title="Mine")
    factories.rendition(asset)
    foreign = factories.asset(factories.collection(other_workspace), title="Theirs")
    # The token's first use stamps it, and its lookup is kept (domain/accounts/credentials.py).
    gql(ASSET, {"id": global_id("Asset", asset.pk)}, token)
    with CaptureQueriesContext(connection) as queries:
        body = gql(ASSET, {"id": global_id("Asset", asset.pk)}, token)
    node = body["data"]["asset"]
    assert node["title"] == "Mine"
    assert len(node["renditions"]) == 1
    # the asset, its renditions
    assert len(queries) == 2, [q["sql"] for q in queries]
    asset_sql, renditions_sql = queries[0]["sql"], queries[1]["sql"]
    assert '"assets_asset"."title"' in asset_sql
    assert '"assets_asset"."metadata"' not in asset_sql
    assert '"assets_asset"."custom_metadata"' not in asset_sql
    # the selector's workspace filter, not a second copy from AssetType.get_queryset
    assert asset_sql.count('"assets_asset"."workspace_id" IN') == 1, asset_sql
    # an asset's renditions need no workspace filter (a join back to the asset) of their own
    assert "JOIN" not in renditions_sql
    # other workspaces' objects, ids of another type and malformed ids are null, not errors
    for query, id_ in [
        (ASSET, global_id("Asset", foreign.pk)),
        (ASSET, global_id("Collection", asset.collection_id)),
        (ASSET, base64.b64encode(b"Asset:abc").decode()),
        ("query($id: ID!) { collection(id: $id) { name } }", global_id("Asset", asset.pk)),
        ("query($id: ID!) { job(id: $id) { kind } }", global_id("Job", 10**9)),
        ("query($id: ID!) { workspace(id: $id) { name } }", global_id("Workspace", 10**9)),
    ]:
        body = gql(query, {"id": id_}, token)
        assert "errors" not in body, body
        assert next(iter(body["data"].values())) is None, (query, id_)
    found = gql(
        "query($c: ID!, $w: ID!) { collection(id: $c) { name } workspace(id: $w) { slug } }",
        {
            "c": global_id("Collection", asset.collection_id),
            "w": global_id("Workspace", workspace.pk),
        },
        token,
    )
    assert found["data"]["collection"]["name"]
    assert found["data"]["workspace"]["slug"] == "acme"


def _async_post(body: dict[str, Any] | list[dict[str, Any]], token: str) -> Any:
    async def post() -> Any:
        return await AsyncClient().post(
            "/graphql/",
            json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )

    return async_to_sync(post)()


def _count_hops(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Thread hops (`sync_to_async` calls) from now on, by the module of the function."""
    hops: Counter[str] = Counter()
    original = SyncToAsync.__call__

    async def counted(hop: Any, *args: Any, **kwargs: Any) -> Any:
        hops[getattr(hop.func, "__module__", "?")] += 1
        return await original(hop, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    return hops


def _post_in_lane(lane: str, body: dict[str, Any], token: str) -> Any:
    """A plain query takes the sync lane (schema/sync_lane.py); the same query as a batch of
    one is executed by the async view, as mutations and subscriptions are."""
    if lane == "sync":
        return _async_post(body, token).json()
    answers = _async_post([body], token).json()
    assert len(answers) == 1
    return answers[0]


# Django's own: the request_started signal and closing the response.
DJANGO_HOPS = {"django.dispatch.dispatcher": 1, "django.http.response": 1}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("assets", [2, 6])
@pytest.mark.parametrize("lane", ["sync", "async"])
def test_thread_hops_do_not_grow_with_the_page(
    token: str, workspace: Workspace, monkeypatch: pytest.MonkeyPatch, assets: int, lane: str
) -> None:
    for c in range(3):
        collection = factories.collection(workspace, name=f"c{c}")
        for _ in range(assets):
            factories.rendition(factories.asset(collection))
    hops = _count_hops(monkeypatch)
    variables = {"w": global_id("Workspace", workspace.pk)}
    body = _post_in_lane(lane, {"query": DASHBOARD, "variables": variables}, token)
    assert "errors" not in body, body
    edges = body["data"]["collections"]["edges"]
    assert [len(e["node"]["assets"]["edges"]) for e in edges] == [assets] * 3
    assert edges[0]["node"]["assets"]["edges"][0]["node"]["state"]
    if lane == "sync":
        # admission and the whole execution in one hop
        assert hops == {**DJANGO_HOPS, "schema.http": 1}, hops
    else:
        execution = sum(n for m, n in hops.items() if m.startswith(("strawberry", "django.db")))
        # the root resolver, its queryset hook, the fetch: not one per collection or asset
        assert execution <= 3, hops


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("lane", ["sync", "async"])
def test_one_object_is_fetched_in_one_thread_hop(
    token: str, workspace: Workspace, monkeypatch: pytest.MonkeyPatch, lane: str
) -> None:
    """The root resolvers only build a QuerySet from the actor's permissions, which admission
    has loaded (`in_memory`): in async execution the one hop left is strawberry-django's
    fetch; in the sync lane, admission's hop runs it all."""
    asset = factories.asset(factories.collection(workspace))
    factories.rendition(asset)
    hops = _count_hops(monkeypatch)
    body = _post_in_lane(
        lane, {"query": ASSET, "variables": {"id": global_id("Asset", asset.pk)}}, token
    )
    assert "errors" not in body, body
    assert body["data"]["asset"]["renditions"] == [{"preset": "thumb-256", "width": 256}]
    execution = sum(n for m, n in hops.items() if m.startswith(("strawberry", "django.db")))
    assert execution == (1 if lane == "async" else 0), hops
    assert hops["schema.http"] == 1, hops
