"""Plain queries run synchronously in the hop that admits them (schema/sync_lane.py), and answer
exactly as the async view does: every request here is sent twice through the real view, once
down the sync lane and once with the lane switched off, and the status, media type and body
(key order included) must be equal."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client, RequestFactory
from strawberry.types.base import StrawberryObjectDefinition

from domain.accounts.models import Workspace
from domain.assets.models import Collection
from domain.common.ids import global_id
from schema import schema as depot_schema
from schema.sync_lane import SyncGraphQLView, SyncLane
from tests.schema.test_compiled_execution import DOCUMENTS, dataset  # noqa: F401 (a fixture)
from tests.support.cache import clear_cache

GRAPHQL_RESPONSE = "application/graphql-response+json"

UNHAPPY: dict[str, tuple[str, dict[str, Any]]] = {
    "an id of nothing": ("query($id: ID!) { asset(id: $id) { id } }", {"id": "QXNzZXQ6MA=="}),
    "another workspace": (
        "query($w: ID!) { assets(workspaceId: $w, first: 1) { totalCount } }",
        {"w": "other"},
    ),
    "a page over the limit": (
        "query($w: ID!) { collections(workspaceId: $w, first: 101) { totalCount } }",
        {"w": "mine"},
    ),
    "a field that does not exist": ("{ viewer { nope } }", {}),
    "an unused variable": ("query($x: Int!) { viewer { username } }", {}),
    "a variable of the wrong type": ("query($id: ID!) { asset(id: $id) { id } }", {"id": [1]}),
}


@pytest.fixture(autouse=True)
def _no_read_cache(settings: Any) -> None:
    settings.DEPOT_READ_CACHE_SECONDS = 0
    clear_cache()


@pytest.fixture
def lanes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which lane each request took, in order."""
    taken: list[str] = []
    original = SyncGraphQLView.dispatch

    def dispatch(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        taken.append("sync")
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(SyncGraphQLView, "dispatch", dispatch)
    return taken


def _post(client: Client, token: str, query: str, variables: dict[str, Any], accept: str) -> Any:
    response = client.post(
        "/graphql/",
        data=json.dumps({"query": query, "variables": variables}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}", "Accept": accept},
    )
    return response.status_code, response["Content-Type"], response.content.decode()


def _both_lanes(
    client: Client,
    token: str,
    query: str,
    variables: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    accept: str = GRAPHQL_RESPONSE,
) -> tuple[Any, Any]:
    sync = _post(client, token, query, variables, accept)
    with monkeypatch.context() as m:
        m.setattr(SyncLane, "takes", lambda *args: False)
        general = _post(client, token, query, variables, accept)
    return sync, general


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_plain_queries_answer_as_the_async_view_does(
    client: Client,
    token: str,
    dataset: dict[str, Any],  # noqa: F811 (the fixture)
    name: str,
    lanes: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    document = DOCUMENTS[name]
    used = {k: v for k, v in dataset.items() if f"${k}" in document}
    sync, general = _both_lanes(client, token, document, used, monkeypatch)
    assert lanes == ["sync"]
    assert sync[0] == 200
    assert "errors" not in json.loads(sync[2]), sync
    assert sync == general


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(UNHAPPY))
@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, "application/json"])
def test_errors_are_the_same_in_both_lanes(
    client: Client,
    token: str,
    workspace: Workspace,
    other_workspace: Workspace,
    name: str,
    accept: str,
    lanes: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    query, variables = UNHAPPY[name]
    ids = {"mine": workspace.pk, "other": other_workspace.pk}
    if variables.get("w") in ids:
        variables = {"w": global_id("Workspace", ids[variables["w"]])}
    sync, general = _both_lanes(client, token, query, variables, monkeypatch, accept)
    assert lanes == ["sync"]
    assert sync == general
    body = json.loads(sync[2])
    if name in ("a field that does not exist", "an unused variable", "a page over the limit"):
        # refused before execution: a request error
        assert sync[0] == (400 if accept == GRAPHQL_RESPONSE else 200)
        assert body["errors"]
    elif name == "another workspace":
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert body["errors"][0]["path"] == ["assets"]
    elif name == "an id of nothing":
        assert body == {"data": {"asset": None}}


@pytest.mark.django_db
def test_an_unexpected_error_is_masked_the_same_way(
    client: Client,
    token: str,
    workspace: Workspace,
    lanes: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("SELECT secret FROM somewhere")

    monkeypatch.setattr("schema.queries.assets.asset_list_for", broken)
    query = "query($id: ID!) { asset(id: $id) { id } }"
    sync, general = _both_lanes(
        client, token, query, {"id": global_id("Asset", 1)}, monkeypatch, "application/json"
    )
    assert lanes == ["sync"]
    answers = [json.loads(body) for _, _, body in (sync, general)]
    for answer in answers:
        error = answer["errors"][0]
        assert error["message"] == "Unexpected error."
        assert error["extensions"]["code"] == "INTERNAL_ERROR"
        assert "secret" not in json.dumps(answer)
        error["extensions"].pop("requestId")  # one per request
    assert answers[0] == answers[1]


@pytest.mark.django_db
def test_a_bad_token_is_refused_before_either_lane(client: Client, lanes: list[str]) -> None:
    response = client.post(
        "/graphql/",
        data=json.dumps({"query": "{ viewer { username } }"}),
        content_type="application/json",
        headers={"Authorization": "Bearer dpt_not-a-token"},
    )
    assert response.status_code == 401
    assert lanes == []


@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [
        ("POST", {"query": "{ viewer { username } }"}, True),
        (
            "POST",
            {
                "query": "query A { viewer { id } } query B { workspaces { totalCount } }",
                "operationName": "B",
            },
            True,
        ),
        ("GET", {"query": "{ workspaces { totalCount } }"}, True),
        ("POST", {"query": "query A { viewer { id } } mutation B { __typename }"}, False),
        (
            "POST",
            {"query": "query A { viewer { id } } mutation B { __typename }", "operationName": "B"},
            True,
        ),
        ("POST", {"query": 'mutation { jobCancel(id: "x") { errors { code } } }'}, True),
        ("POST", {"query": "subscription { jobStats { queued } }"}, False),
        (
            "POST",
            {"query": "query($w: ID!) { events(workspaceId: $w) { edges { cursor } } }"},
            False,
        ),
        ("POST", {"query": "{ ...F } fragment F on Query { viewer { id } }"}, False),
        ("POST", {"query": "{ __schema { queryType { name } } }"}, False),
        ("POST", {"query": "{ viewer { "}, False),
        ("POST", {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "ab"}}}, False),
        ("POST", [{"query": "{ viewer { username } }"}], False),
        ("POST", "not json", False),
    ],
)
def test_which_requests_take_the_sync_lane(method: str, body: Any, expected: bool) -> None:
    factory = RequestFactory()
    if method == "GET":
        request = factory.get("/graphql/", body)
    elif body == "not json":
        request = factory.post("/graphql/", data="{", content_type="application/json")
    else:
        request = factory.post("/graphql/", data=json.dumps(body), content_type="application/json")
    assert SyncLane(depot_schema, allow_queries_via_get=True).takes(request) is expected


def test_only_root_fields_may_be_async() -> None:
    """The lane checks a document's root fields only: a query selecting an `async def` field
    anywhere below would fail to run synchronously. So no type but the root ones has one (an
    async root query field, like `events`, sends its documents to the async view)."""
    roots = {"Query", "Mutation", "Subscription"}
    async_fields = [
        f"{name}.{field.python_name}"
        for name, concrete in depot_schema.schema_converter.type_map.items()
        if name not in roots and isinstance(concrete.definition, StrawberryObjectDefinition)
        for field in concrete.definition.fields
        if field.is_async
    ]
    assert len(depot_schema.schema_converter.type_map) > 50  # the walk saw the schema
    assert async_fields == []


CREATE = """mutation($i: CollectionCreateInput!) {
  collectionCreate(input: $i) { collection { name description } errors { code path } } }"""


@pytest.mark.django_db
def test_mutations_answer_as_the_async_view_does(
    client: Client,
    token: str,
    make_token: Any,
    workspace: Workspace,
    other_workspace: Workspace,
    lanes: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A mutation runs on the sync lane; under async execution (a batch, a websocket) its
    resolver takes a thread hop instead (schema.mutations.either_mode): the same answers."""
    mine = global_id("Workspace", workspace.pk)
    for index, (variables, caller) in enumerate(
        [
            ({"workspaceId": mine, "name": "Made"}, token),  # written both times, as named
            ({"workspaceId": global_id("Workspace", other_workspace.pk), "name": "X"}, token),
            ({"workspaceId": mine, "name": ""}, token),
            ({"workspaceId": mine, "name": "Read only"}, make_token("read")),
        ]
    ):
        if index == 0:
            sync = _post(client, caller, CREATE, {"i": variables}, GRAPHQL_RESPONSE)
            with monkeypatch.context() as m:
                m.setattr(SyncLane, "takes", lambda *args: False)
                again = {**variables, "name": "Made too"}
                general = _post(client, caller, CREATE, {"i": again}, GRAPHQL_RESPONSE)
            for (status, media, body), name in [(sync, "Made"), (general, "Made too")]:
                assert (status, media) == (200, GRAPHQL_RESPONSE)
                assert json.loads(body) == {
                    "data": {
                        "collectionCreate": {
                            "collection": {"name": name, "description": ""},
                            "errors": [],
                        }
                    }
                }
            names = Collection.objects.filter(workspace=workspace).values_list("name", flat=True)
            assert sorted(names) == ["Made", "Made too"]
            continue
        sync, general = _both_lanes(client, caller, CREATE, {"i": variables}, monkeypatch)
        assert sync == general, variables
        assert json.loads(sync[2])["data"]["collectionCreate"]["errors"], variables
    assert lanes == ["sync"] * 4  # each case's first request
