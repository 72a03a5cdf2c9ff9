"""Lists a query or subscription looks things up with (a filter's `stateIn`, an `ordering`,
`nodes`' ids) have a limit on their items, and a filter nests at most 10 filters in one
another (AND, OR, NOT): over them, INVALID_INPUT naming the argument (`extensions.inputPath`)
and the limit, before any resolver runs, for a literal or a variable, on a root field, a nested
connection or a subscription. Before, only the 2.5 MB request body bounded the lists (variables
are not counted by the token limit), and a filter nested up to the 200 levels graphql-core
allows went to Postgres as a WHERE nested as deep. Variables no argument could take at all are
refused before they are coerced."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from graphql import (
    GraphQLInputObjectType,
    get_named_type,
)

from domain.accounts.models import Workspace
from domain.common.ids import global_id
from domain.jobs.models import Job
from schema import schema
from tests import factories
from tests.conftest import GQL
from tests.realtime.sockets import Socket, run
from tests.schema.lookup_inputs import is_list, lookup_inputs, refused


def _too_many(body: dict[str, Any], path: list[str], limit: int, sent: int) -> None:
    refused(body, path, f"`{path[-1]}` has at most {limit:,} items; this one has {sent:,}.")


def _read_table(queries: CaptureQueriesContext, table: str) -> bool:
    return any(f'"{table}"' in q["sql"] for q in queries.captured_queries)


JOBS = "query($f: JobFilter) { jobs(filters: $f) { totalCount } }"
CHILDREN = (
    "query($id: ID!, $f: JobFilter) { job(id: $id) { children(filters: $f) { totalCount } } }"
)


@pytest.mark.django_db
def test_a_filters_list(gql: GQL, token: str, workspace: Workspace) -> None:
    parent = Job.objects.create(workspace=workspace, kind="batch", lane="bulk")
    Job.objects.create(workspace=workspace, kind="asset.process", lane="bulk", parent=parent)
    too_many = ["QUEUED", "RUNNING"] * 50 + ["FAILED"]

    with CaptureQueriesContext(connection) as queries:
        body = gql(JOBS, {"f": {"stateIn": too_many}}, token)
    _too_many(body, ["filters", "stateIn"], 100, 101)
    assert not _read_table(queries, "jobs_job")
    inside = {"OR": {"NOT": {"stateIn": too_many}}}
    _too_many(gql(JOBS, {"f": inside}, token), ["filters", "OR", "NOT", "stateIn"], 100, 101)
    nested = gql(CHILDREN, {"id": global_id("Job", parent.pk), "f": {"stateIn": too_many}}, token)
    _too_many(nested, ["filters", "stateIn"], 100, 101)
    # Written in the document rather than sent as a variable: the same.
    literal = f"{{ jobs(filters: {{AND: {{stateIn: [{', '.join(too_many)}]}}}}) {{ totalCount }} }}"
    _too_many(gql(literal, {}, token), ["filters", "AND", "stateIn"], 100, 101)

    at_limit = gql(JOBS, {"f": {"stateIn": too_many[:100]}}, token)
    assert at_limit["data"] == {"jobs": {"totalCount": 2}}, at_limit


ASSETS = "query($o: [AssetOrder!]!) { assets(ordering: $o) { totalCount } }"
COLLECTION_ASSETS = """query($id: ID!, $o: [AssetOrder!]!) {
  collection(id: $id) { assets(ordering: $o) { totalCount } } }"""
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"


@pytest.mark.django_db
def test_an_ordering_and_the_ids_of_nodes(gql: GQL, token: str, workspace: Workspace) -> None:
    collection = factories.collection(workspace)
    asset = factories.asset(collection)
    orders = [{"title": "ASC"}, {"createdAt": "DESC"}] * 5 + [{"size": "ASC"}]

    with CaptureQueriesContext(connection) as queries:
        body = gql(ASSETS, {"o": orders}, token)
    _too_many(body, ["ordering"], 10, 11)
    assert not _read_table(queries, "assets_asset")
    collection_id = global_id("Collection", collection.pk)
    nested = gql(COLLECTION_ASSETS, {"id": collection_id, "o": orders}, token)
    _too_many(nested, ["ordering"], 10, 11)
    eleven = ", ".join(["{size: ASC}"] * 11)
    literal = f"{{ assets(ordering: [{eleven}]) {{ totalCount }} }}"
    _too_many(gql(literal, {}, token), ["ordering"], 10, 11)
    assert gql(ASSETS, {"o": orders[:10]}, token)["data"] == {"assets": {"totalCount": 1}}

    ids = [global_id("Asset", asset.pk)] * 101
    with CaptureQueriesContext(connection) as queries:
        body = gql(NODES, {"ids": ids}, token)
    _too_many(body, ["ids"], 100, 101)
    assert not _read_table(queries, "assets_asset")
    found = gql(NODES, {"ids": ids[:100]}, token)["data"]["nodes"]
    assert found == [{"id": ids[0]}] * 100


def _nested(
    depth: int, leaf: dict[str, Any], keys: tuple[str, ...] = ("AND",), condition: str = "tag"
) -> Any:
    """`leaf` inside `depth` filters, each with a condition of its own."""
    value = leaf
    for level in range(depth):
        value = {keys[level % len(keys)]: value, condition: f"t{level}"}
    return value


ASSET_FILTER = "query($f: AssetFilter) { assets(filters: $f) { totalCount } }"
NESTING = "`filters` nests at most 10 filters in one another (AND, OR, NOT)"


@pytest.mark.django_db
def test_a_filters_nesting(gql: GQL, token: str, workspace: Workspace) -> None:
    collection = factories.collection(workspace)
    factories.asset(collection, tags=[f"t{n}" for n in range(12)])
    eleven = ["filters", *["AND"] * 11]

    # Eleven tags ANDed (ten filters nested in the first) is what a client may ask.
    at_limit = gql(ASSET_FILTER, {"f": _nested(10, {"tag": "t11"})}, token)
    assert at_limit["data"] == {"assets": {"totalCount": 1}}, at_limit
    with CaptureQueriesContext(connection) as queries:
        body = gql(ASSET_FILTER, {"f": _nested(11, {"tag": "t11"})}, token)
    refused(body, eleven, NESTING)
    assert not _read_table(queries, "assets_asset")
    mixed = _nested(11, {"tag": "t11"}, ("OR", "NOT", "AND"))
    path = ["filters", *[("OR", "NOT", "AND")[n % 3] for n in range(10, -1, -1)]]
    refused(gql(ASSET_FILTER, {"f": mixed}, token), path, NESTING)
    # An empty filter further down counts too; a null one is no filter.
    refused(gql(ASSET_FILTER, {"f": _nested(11, {})}, token), eleven, NESTING)
    assert gql(ASSET_FILTER, {"f": _nested(10, {"AND": None})}, token)["data"] is not None

    nested = """query($id: ID!, $f: AssetFilter) {
      collection(id: $id) { assets(filters: $f) { totalCount } } }"""
    collection_id = global_id("Collection", collection.pk)
    body = gql(nested, {"id": collection_id, "f": _nested(11, {"tag": "t11"})}, token)
    refused(body, eleven, NESTING)
    deep = "{AND: " * 11 + "{}" + "}" * 11
    literal = f"{{ assets(filters: {deep}) {{ totalCount }} }}"
    refused(gql(literal, {}, token), eleven, NESTING)
    # Deeper, within what the raw variables may nest (past that, the last test of this file).
    deeper = gql(ASSET_FILTER, {"f": _nested(30, {"tag": "t11"})}, token)
    refused(deeper, eleven, NESTING)


SUBSCRIBE_JOBS = (
    "subscription($w: ID!, $f: JobFilter) { jobs(workspaceId: $w, filters: $f) { id } }"
)


@pytest.mark.django_db(transaction=True)
def test_a_subscriptions_lists_and_nesting(workspace: Workspace, token: str) -> None:
    """Refused as the subscription starts, not at its first event."""
    ws = global_id("Workspace", workspace.pk)
    asked: dict[str, dict[str, Any]] = {
        "many-states": {"w": ws, "f": {"stateIn": ["QUEUED"] * 101}},
        "deep": {"w": ws, "f": _nested(11, {"kind": "x"}, ("NOT",), "kind")},
    }

    async def scenario() -> dict[str, Any]:
        socket = Socket()
        await socket.open(token)
        for sub_id, variables in asked.items():
            await socket.subscribe(sub_id, SUBSCRIBE_JOBS, variables)
        return {sub_id: json.loads((await socket.collect(sub_id, 1))[0]) for sub_id in asked}

    frames = run(scenario)
    for frame in frames.values():
        assert frame["type"] == "next", frame
    _too_many(frames["many-states"]["payload"], ["filters", "stateIn"], 100, 101)
    refused(frames["deep"]["payload"], ["filters", *["NOT"] * 11], NESTING)


def test_every_list_a_query_or_subscription_looks_up_with_has_a_limit() -> None:
    """A list argument or filter field added later gets a limit on its items too
    (`list_limit`, `text_limit(items=)`, or schema/limits.py's `_GENERATED` for those
    strawberry-django makes), or this fails. Mutations' lists are their services' to check
    (tests/schema/test_mutation_list_limits.py)."""
    from schema.limits import limit_of

    missing = [
        where
        for where, _, definition in lookup_inputs()
        if is_list(definition.type) and getattr(limit_of(definition), "items", None) is None
    ]
    assert missing == []


def test_an_input_type_nests_only_itself() -> None:
    """The nesting limit counts input objects inside one of their own type (a filter's AND,
    OR, NOT): an input type that reached itself through another type would escape it."""
    inputs = {
        t.name: t for t in schema._schema.type_map.values() if isinstance(t, GraphQLInputObjectType)
    }

    def reachable(name: str) -> set[str]:
        found: set[str] = set()
        todo = [name]
        while todo:
            for field in inputs[todo.pop()].fields.values():
                inner = get_named_type(field.type).name
                if inner in inputs and inner not in found:
                    found.add(inner)
                    todo.append(inner)
        return found

    through_others = [
        name
        for name in inputs
        if any(name in reachable(other) for other in reachable(name) - {name})
    ]
    assert through_others == []


@pytest.mark.django_db(transaction=True)
def test_variables_no_argument_could_take_are_refused_before_they_are_coerced(
    gql: GQL, token: str, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list longer than any argument takes, or nesting deeper than any input nests, is
    refused from the raw variables: graphql-core's coercion of a 2.5 MB list of enums took
    1.4 s of CPU (twice: for the limits, and to execute) before the field's own limit said no.
    Over HTTP and on a socket; the variables' own path in `inputPath`."""
    import schema.limits

    def coerced(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the variables were coerced")

    monkeypatch.setattr(schema.limits, "get_variable_values", coerced)
    huge = {"stateIn": ["QUEUED"] * 200_000}
    refused(
        gql(JOBS, {"f": huge}, token),
        ["$f", "stateIn"],
        "`$f` holds a list of 200,000 items; no argument takes more than 10,000.",
    )
    deep: Any = {"kind": "x"}
    for _ in range(40):
        deep = {"AND": deep}
    refused(
        gql(JOBS, {"f": deep}, token),
        ["$f"],
        "`$f` nests more than 32 lists and objects in one another; no argument takes that.",
    )

    async def scenario() -> dict[str, Any]:
        socket = Socket()
        await socket.open(token)
        ws = global_id("Workspace", workspace.pk)
        await socket.subscribe("huge", SUBSCRIBE_JOBS, {"w": ws, "f": huge})
        return json.loads((await socket.collect("huge", 1))[0])

    frame = run(scenario)
    assert frame["type"] == "next", frame
    refused(frame["payload"], ["$f", "stateIn"], "holds a list of 200,000 items")
