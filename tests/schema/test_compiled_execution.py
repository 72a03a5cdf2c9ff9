"""Compiled plans for plain selections (schema/execution.py) answer exactly as graphql-core's
general execution does: the same data in the same key order, the same errors with the same
paths and null propagation. Every document here runs twice through the real view, with plans
and with them switched off, and the two responses must be equal."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import strawberry
from django.db.backends.utils import CursorWrapper
from django.db.models import Prefetch
from graphql import GraphQLInt, GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLString
from strawberry.extensions import SchemaExtension
from strawberry_django.optimizer import mark_optimized_by_prefetching

from domain.accounts.models import Workspace
from domain.assets.models import Asset, Rendition
from domain.common.ids import global_id
from domain.jobs.models import Job, JobState, Lane
from schema import schema as depot_schema
from schema.execution import (
    GENERAL,
    DepotExecutionContext,
    attribute_reader,
    column_reader,
    leaf_coercion,
    model_type_check,
    prefetched_reader,
)
from schema.types.assets import AssetType, RenditionType
from tests import factories
from tests.conftest import GQL
from tests.support.cache import clear_cache

ASSET_FIELDS = """id __typename title tags description customMetadata originalFilename
  declaredContentType contentType size metadata createdAt updatedAt state sha256
  renditions { id preset format width height size onDemand __typename }"""

DOCUMENTS = {
    "dashboard": f"""query($w: ID!) {{ collections(workspaceId: $w, first: 20) {{ totalCount
      edges {{ cursor node {{ id name __typename assets(first: 10) {{ totalCount
        edges {{ node {{ {ASSET_FIELDS} }} }} }} }} }} }} }}""",
    "aliases, fragments and directives": """query($w: ID!, $yes: Boolean!, $no: Boolean!) {
      c: collections(workspaceId: $w, first: 5) { edges { node {
        ...C
        again: name
        assets(first: 3) { edges { node {
          t: title title @include(if: $yes) size @skip(if: $yes) bytes: size
          ... on Asset { sha256 title }
          ... @include(if: $no) { description }
          renditions { w: width width h: height ...R }
        } } }
      } } } }
      fragment C on Collection { id name __typename }
      fragment R on Rendition { preset p: preset __typename }""",
    "node and nodes": """query($a: ID!, $c: ID!, $r: ID!) {
      node(id: $a) { id __typename ... on Asset { title size renditions { preset } } }
      nodes(ids: [$a, $c, $r]) { id ... on Collection { name } ... on Rendition { width } }
    }""",
    # Nothing under the assets' edges needs graphql-core: completed inline, whole.
    "inline subtrees": """query($w: ID!, $yes: Boolean!, $no: Boolean!) {
      collections(workspaceId: $w, first: 20) { edges { node { id
        assets(first: 10) { edges { cursor node {
          id title t: title size state tags description __typename
          ... on Asset { customMetadata }
          ... @include(if: $no) { originalFilename }
          renditions { preset width @include(if: $yes) height @skip(if: $yes) __typename ...R }
        } } }
      } } } }
      fragment R on Rendition { id format onDemand w: width }""",
    # Prefetched pages read directly: cursors, page info, arguments applied by the optimizer.
    "nested connections": """query($w: ID!, $n: Int!) {
      collections(workspaceId: $w, first: 3) { edges { node {
        a: assets(first: $n, ordering: [{title: ASC}], filters: {titleContains: "a"}) {
          totalCount
          pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
          edges { cursor node { title } } }
      } } } }""",
    "a nested page after a cursor": """query($w: ID!) {
      collections(workspaceId: $w, first: 3) { edges { node {
        assets(first: 1, after: "YXJyYXljb25uZWN0aW9uOjA=") {
          pageInfo { hasPreviousPage hasNextPage startCursor } edges { cursor node { id } } }
      } } } }""",
    # Aliases of one relation with the same arguments: one prefetch (schema/optimizer_aliases.py)
    # that both read directly.
    "aliased connections": """query($w: ID!) {
      collections(workspaceId: $w, first: 2) { edges { node {
        a: assets(first: 2) { edges { node { title } } }
        b: assets(first: 2) { totalCount edges { node { size } } }
      } } } }""",
    "connections with different arguments": """query($w: ID!) {
      collections(workspaceId: $w, first: 2) { edges { node {
        first: assets(first: 1) { pageInfo { hasNextPage endCursor } edges { node { title } } }
        rest: assets(first: 2, after: "YXJyYXljb25uZWN0aW9uOjA=") {
          pageInfo { hasPreviousPage hasNextPage } edges { cursor node { title } } }
      } } } }""",
    # A page per alias, with its own ordering, filters and relations under it; no row matches
    # `none`, so its pages are empty.
    "aliased pages with their own arguments": """query($w: ID!) {
      collections(workspaceId: $w, first: 5) { edges { node { name
        newest: assets(first: 2, ordering: [{title: DESC}]) {
          totalCount edges { cursor node { title renditions { preset } } } }
        oldest: assets(first: 1, ordering: [{title: ASC}]) { edges { node { title size } } }
        none: assets(first: 5, filters: {titleContains: "zzz"}) {
          totalCount pageInfo { hasNextPage endCursor } edges { node { id } } }
      } } } }""",
    "aliased pages of one collection": """query($c: ID!) {
      collection(id: $c) { name
        a: assets(first: 1) { pageInfo { hasNextPage } edges { node { title } } }
        b: assets(first: 3, ordering: [{title: DESC}]) { totalCount edges { node { size } } }
      } }""",
    "aliased pages through a foreign key": """query($w: ID!) {
      assets(workspaceId: $w, first: 4) { edges { node { title collection { name
        a: assets(first: 1) { edges { node { title } } }
        b: assets(first: 2, ordering: [{title: DESC}]) { totalCount edges { node { title } } }
      } } } } }""",
    "viewer and jobs": """query($w: ID!) { viewer { username memberships { role
      workspace { id name slug } } }
      jobs(workspaceId: $w, first: 5) { edges { node { id kind state lane attempts
        parameters result startedAt cancelRequested progress { done total stage }
        parent { id kind } } } } }""",
}


@pytest.fixture(autouse=True)
def _no_read_cache(settings: Any) -> None:
    settings.DEPOT_READ_CACHE_SECONDS = 0
    clear_cache()


@pytest.fixture
def dataset(workspace: Workspace) -> dict[str, Any]:
    first = None
    for c in range(3):
        collection = factories.collection(workspace, name=f"collection {c}")
        for a in range(3):
            asset = factories.asset(
                collection,
                tags=["x", f"t{a}"],
                description="" if a else "described",
                custom_metadata={"n": a, "nested": {"ok": True}},
                metadata={"width": 10 * a},
                size=2**40 + a,
            )
            factories.rendition(asset)
            factories.rendition(asset, preset="preview-1024")
            first = first or asset
    assert first is not None
    parent = Job.objects.create(
        workspace=workspace, kind="collection.delete", lane=Lane.BULK, state=JobState.RUNNING
    )
    Job.objects.create(
        workspace=workspace,
        kind="asset.process",
        lane=Lane.INTERACTIVE,
        state=JobState.SUCCEEDED,
        parent=parent,
        result={"renditions": 2},
        progress_done=3,
        progress_total=3,
    )
    rendition = first.renditions.first()
    assert rendition is not None
    return {
        "w": global_id("Workspace", workspace.pk),
        "a": global_id("Asset", first.pk),
        "c": global_id("Collection", first.collection_id),
        "r": global_id("Rendition", rendition.pk),
        "yes": True,
        "no": False,
        "n": 2,
    }


@pytest.fixture
def executed(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times graphql-core executed each field (by name) the general way."""
    counts: Counter[str] = Counter()
    original = DepotExecutionContext.execute_field

    def counted(self: Any, parent_type: Any, source: Any, details: Any, *rest: Any) -> Any:
        counts[details[0].node.name.value] += 1
        return original(self, parent_type, source, details, *rest)

    monkeypatch.setattr(DepotExecutionContext, "execute_field", counted)
    return counts


def _both(
    gql: GQL, token: str, document: str, variables: dict[str, Any], monkeypatch: Any
) -> tuple[Any, Any]:
    compiled = gql(document, variables, token)
    with monkeypatch.context() as m:
        m.setattr(DepotExecutionContext, "_plan", lambda *args: None)
        general = gql(document, variables, token)
    return compiled, general


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_plans_answer_exactly_as_general_execution(
    gql: GQL, token: str, dataset: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = DOCUMENTS[name]
    used = {k: v for k, v in dataset.items() if f"${k}" in document}
    compiled, general = _both(gql, token, document, used, monkeypatch)
    assert "errors" not in general, general
    assert compiled == general
    # key order too: clients may rely on it, and the spec asks for it
    assert repr(compiled) == repr(general)


@pytest.mark.django_db
def test_a_value_the_scalar_refuses_reports_the_same_error(
    gql: GQL, token: str, dataset: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A width beyond 32 bits cannot be an Int: the field is null (it is non-null, so its
    rendition and then the list become null), with one error at the same path either way."""
    original = Rendition.from_db

    def from_db(cls: type[Rendition], *args: Any) -> Rendition:
        rendition = original.__func__(cls, *args)  # type: ignore[attr-defined]
        if rendition.preset == "preview-1024":
            rendition.__dict__["width"] = 2**40
        return rendition

    monkeypatch.setattr(Rendition, "from_db", classmethod(from_db))
    document = "query($a: ID!) { asset(id: $a) { title renditions { preset width } } }"
    compiled, general = _both(gql, token, document, {"a": dataset["a"]}, monkeypatch)
    assert compiled == general
    assert compiled["data"] == {"asset": None}  # [Rendition!]! propagates up to the asset
    (error,) = compiled["errors"]
    assert error["path"][:2] == ["asset", "renditions"]
    assert error["path"][-1] == "width"
    assert "32-bit" in error["message"]


@pytest.mark.django_db
def test_plain_fields_skip_graphql_cores_per_field_execution(
    gql: GQL, token: str, dataset: dict[str, Any], executed: Counter[str]
) -> None:
    body = gql(DOCUMENTS["dashboard"], {"w": dataset["w"]}, token)
    assert "errors" not in body, body
    assert len(body["data"]["collections"]["edges"]) == 3
    # Read directly: columns, ids, __typename, edges and their nodes and cursors, prefetched
    # relations and the connections over them. Left to graphql-core: fields with resolvers
    # (totalCount, sha256) and root fields.
    assert set(executed) == {"collections", "totalCount", "sha256"}, executed
    assert executed["totalCount"] == 1 + 3
    assert executed["sha256"] == 9


@pytest.mark.django_db
def test_prefetched_pages_are_read_directly_and_others_resolved(
    gql: GQL,
    token: str,
    dataset: dict[str, Any],
    executed: Counter[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A nested connection whose page the optimizer prefetched is built from those rows, for
    aliases with the same arguments (one prefetch) and with different ones (one each) too."""
    body = gql(DOCUMENTS["nested connections"], {"w": dataset["w"], "n": 2}, token)
    assert "errors" not in body, body
    first = body["data"]["collections"]["edges"][0]["node"]
    assert first["a"]["totalCount"] == 3
    assert first["a"]["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["title"] for e in first["a"]["edges"]] == sorted(
        e["node"]["title"] for e in first["a"]["edges"]
    )
    assert executed["assets"] == 0
    body = gql(DOCUMENTS["a nested page after a cursor"], {"w": dataset["w"]}, token)
    assert "errors" not in body, body
    page = body["data"]["collections"]["edges"][0]["node"]["assets"]
    assert page["pageInfo"] == {
        "hasPreviousPage": True,
        "hasNextPage": True,
        "startCursor": "YXJyYXljb25uZWN0aW9uOjE=",
    }
    assert executed["assets"] == 0
    executed.clear()
    with _statements(monkeypatch) as aliased:
        body = gql(DOCUMENTS["aliased connections"], {"w": dataset["w"]}, token)
    assert "errors" not in body, body
    first = body["data"]["collections"]["edges"][0]["node"]
    plain = _one_alias(gql, token, dataset)  # the same page asked without aliases
    assert [e["node"]["title"] for e in first["a"]["edges"]] == [
        e["node"]["title"] for e in plain["edges"]
    ]
    assert first["b"]["totalCount"] == 3
    assert executed["assets"] == 0
    collections_only = """query($w: ID!) {
      collections(workspaceId: $w, first: 2) { edges { node { id } } } }"""
    with _statements(monkeypatch) as flat:
        gql(collections_only, {"w": dataset["w"]}, token)
    assert len(aliased) == len(flat) + 1, aliased  # one prefetch for both aliases' pages
    assert plain["pageInfo"]["hasNextPage"] is True
    executed.clear()
    with _statements(monkeypatch) as different:
        body = gql(DOCUMENTS["connections with different arguments"], {"w": dataset["w"]}, token)
    assert "errors" not in body, body
    # A prefetch per alias (schema/optimizer_aliases.py), each page read directly: before, each
    # alias queried once per collection.
    assert executed["assets"] == 0
    assert len(different) == len(flat) + 2, different
    first = body["data"]["collections"]["edges"][0]["node"]
    assert first["first"]["pageInfo"]["hasNextPage"] is True
    assert [e["cursor"] for e in first["rest"]["edges"]] == [
        "YXJyYXljb25uZWN0aW9uOjE=",
        "YXJyYXljb25uZWN0aW9uOjI=",
    ]
    assert first["rest"]["pageInfo"] == {"hasPreviousPage": True, "hasNextPage": False}
    executed.clear()
    with _statements(monkeypatch) as own:
        body = gql(DOCUMENTS["aliased pages with their own arguments"], {"w": dataset["w"]}, token)
    assert "errors" not in body, body
    nodes = [edge["node"] for edge in body["data"]["collections"]["edges"]]
    assert len(nodes) == 3
    for node in nodes:
        titles = [edge["node"]["title"] for edge in node["newest"]["edges"]]
        assert titles == sorted(titles, reverse=True)
        assert node["none"] == {
            "totalCount": 0,
            "pageInfo": {"hasNextPage": False, "endCursor": None},
            "edges": [],
        }
    assert executed["assets"] == 0
    # The collections (and their count), a page per alias, the renditions under `newest`.
    assert len(own) == len(flat) + 4, own


@contextmanager
def _statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The SQL statements run meanwhile, on any thread's connection."""
    statements: list[str] = []
    original = CursorWrapper._execute  # type: ignore[attr-defined]

    def counted(self: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        statements.append(sql)
        return original(self, sql, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(CursorWrapper, "_execute", counted)
        yield statements


def _one_alias(gql: GQL, token: str, dataset: dict[str, Any]) -> Any:
    document = """query($w: ID!) { collections(workspaceId: $w, first: 2) { edges { node {
      assets(first: 2) { pageInfo { hasNextPage } edges { node { title } } } } } } }"""
    body = gql(document, {"w": dataset["w"]}, token)
    return body["data"]["collections"]["edges"][0]["node"]["assets"]


@pytest.mark.django_db
def test_whole_subtrees_of_plain_fields_are_completed_inline(
    gql: GQL, token: str, dataset: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edges, their assets and the assets' renditions never reach graphql-core's object
    completion when every field under them is read directly."""
    completed: Counter[str] = Counter()
    original = DepotExecutionContext.complete_object_value

    def counted(self: Any, return_type: Any, *rest: Any) -> Any:
        completed[return_type.name] += 1
        return original(self, return_type, *rest)

    monkeypatch.setattr(DepotExecutionContext, "complete_object_value", counted)
    document = DOCUMENTS["inline subtrees"]
    variables = {k: dataset[k] for k in ("w", "yes", "no")}
    body = gql(document, variables, token)
    assert "errors" not in body, body
    edges = body["data"]["collections"]["edges"][0]["node"]["assets"]["edges"]
    assert len(edges) == 3
    assert len(edges[0]["node"]["renditions"]) == 2
    # The root connection is completed by graphql-core (the root field is executed the general
    # way); everything under it inline, the prefetched assets connections included.
    assert set(completed) == {"CollectionConnection"}, completed
    # With sha256 (a resolver of its own) under the asset, only the renditions go inline.
    completed.clear()
    body = gql(DOCUMENTS["dashboard"], {"w": dataset["w"]}, token)
    assert "errors" not in body, body
    assert completed["Asset"] == 9
    assert "Rendition" not in completed


@pytest.mark.django_db
def test_an_object_of_the_wrong_type_fails_inline_as_in_graphql_core(
    gql: GQL, token: str, dataset: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rendition cast to another type fails graphql-core's is_type_of check: the inline path
    gives that list back to graphql-core, which reports the error at the same path."""
    original = Rendition.from_db

    def from_db(cls: type[Rendition], *args: Any) -> Rendition:
        rendition = original.__func__(cls, *args)  # type: ignore[attr-defined]
        if rendition.preset == "preview-1024":
            strawberry.cast(AssetType, rendition)
        return rendition

    monkeypatch.setattr(Rendition, "from_db", classmethod(from_db))
    document = "query($a: ID!) { asset(id: $a) { title renditions { preset width } } }"
    compiled, general = _both(gql, token, document, {"a": dataset["a"]}, monkeypatch)
    assert compiled == general
    assert compiled["data"] == {"asset": None}
    (error,) = compiled["errors"]
    assert error["path"][:2] == ["asset", "renditions"]
    assert "Expected value of type 'Rendition'" in error["message"]


def test_the_inline_type_check_answers_as_strawberry_djangos_is_type_of() -> None:
    graphql_type = depot_schema._schema.type_map["Rendition"]
    assert isinstance(graphql_type, GraphQLObjectType)
    is_type_of = graphql_type.is_type_of
    assert is_type_of is not None
    check = model_type_check(is_type_of)
    assert check is not None
    cast = strawberry.cast(AssetType, Rendition(preset="cast"))
    for value in (Rendition(preset="p"), Asset(title="t"), cast, "text", None):
        assert check(value) == is_type_of(value, None), value  # type: ignore[arg-type]
    assert model_type_check(lambda value, info: True) is None  # anything else: graphql-core

    class Custom(RenditionType):  # a check of its own: graphql-core calls it
        @classmethod
        def is_type_of(cls, obj: Any, info: Any) -> bool:
            return False

    assert model_type_check(Custom.is_type_of) is None


def test_a_column_read_defers_to_general_execution_when_it_cannot_answer() -> None:
    class Row:
        def __init__(self, **values: Any) -> None:
            self.__dict__.update(values)

    int_value, _ = leaf_coercion(GraphQLInt)
    assert int_value is not None
    width = column_reader("width", int_value, non_null=True)
    assert width(Row(width=7)) == 7
    assert width(Row()) is GENERAL  # deferred: general execution loads it
    assert width(Row(width=None)) is GENERAL  # null in a non-null field: the error
    assert width(Row(width=2**40)) is GENERAL  # refused by Int: the error
    tags_value, non_null = leaf_coercion(GraphQLNonNull(GraphQLList(GraphQLNonNull(GraphQLString))))
    assert tags_value is not None
    assert non_null
    tags = column_reader("tags", tags_value, non_null=True)
    assert tags(Row(tags=["a", "b"])) == ["a", "b"]
    assert tags(Row(tags=["a", None])) is GENERAL  # a null in [String!]: the error
    assert tags(Row(tags=("a",))) is GENERAL  # any other iterable: the general way
    assert leaf_coercion(GraphQLList(GraphQLList(GraphQLString)))[0] is None
    string_value, _ = leaf_coercion(GraphQLString)
    assert string_value is not None
    description = column_reader("description", string_value, non_null=False)
    assert description(Row(description=None)) is None
    assert description(object()) is GENERAL


class Shout(SchemaExtension):
    """A resolve hook of another kind: it must see every field, plain ones included."""

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        value = _next(root, info, *args, **kwargs)
        return value.upper() if isinstance(value, str) else value


@pytest.mark.django_db
def test_any_other_resolve_hook_turns_plans_off(
    gql: GQL, token: str, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    factories.asset(factories.collection(workspace), title="quiet")
    monkeypatch.setattr(depot_schema, "extensions", [*depot_schema.extensions, Shout])
    body = gql(
        "query($w: ID!) { assets(workspaceId: $w, first: 1) { edges { node { title } } } }",
        {"w": global_id("Workspace", workspace.pk)},
        token,
    )
    assert body["data"]["assets"]["edges"][0]["node"]["title"] == "QUIET"


@pytest.mark.django_db
def test_only_rows_the_optimizer_prefetched_are_read_directly(workspace: Workspace) -> None:
    """Rows prefetched by anyone else (no type `get_queryset`, so no workspace scoping applied)
    go the general way, where strawberry-django applies the type's `get_queryset`."""
    asset = factories.asset(factories.collection(workspace))
    factories.rendition(asset)
    read = prefetched_reader("renditions")
    plain = Asset.objects.prefetch_related("renditions").get(pk=asset.pk)
    assert read(plain) is GENERAL
    assert read(Asset.objects.get(pk=asset.pk)) is GENERAL  # nothing prefetched
    optimized = Rendition.objects.filter(asset=asset)
    mark_optimized_by_prefetching(optimized)
    by_optimizer = Asset.objects.prefetch_related(Prefetch("renditions", optimized)).get(
        pk=asset.pk
    )
    rows = read(by_optimizer)
    assert [r.preset for r in rows] == ["thumb-256"]


def test_an_attribute_read_leaves_querysets_and_awaitables_to_general_execution() -> None:
    class Edge:
        def __init__(self, node: Any) -> None:
            self.node = node

    read = attribute_reader(lambda source: source.node)
    assert read(Edge("a node")) == "a node"
    assert read(Edge(Asset.objects.none())) is GENERAL  # the optimizer's middleware shapes it

    async def later() -> str:
        return "a node"

    pending = later()
    assert read(Edge(pending)) is GENERAL  # graphql-core awaits it, then completes it
    pending.close()
    assert attribute_reader(lambda source: source.missing)(Edge(None)) is GENERAL
