"""Abuse limits, rate limits, throttled logins, introspection: refused early, with codes."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from domain.accounts.models import User, Workspace
from domain.common.ids import global_id
from tests.conftest import GQL
from tests.support.cache import clear_cache


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    clear_cache()


def _codes(body: dict[str, Any]) -> list[str]:
    return [error.get("extensions", {}).get("code", error["message"]) for error in body["errors"]]


def _deep(levels: int) -> str:
    inner = "id"
    for _ in range(levels):
        inner = f"collection {{ {inner} }}"
    return "{ assets(first: 1) { edges { node { " + inner + " } } } }"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "needle"),
    [
        pytest.param(_deep(12), "exceeds maximum operation depth", id="depth"),
        pytest.param(
            "{ " + " ".join(f"a{n}: viewer {{ username }}" for n in range(16)) + " }",
            "aliases",
            id="aliases",
        ),
        pytest.param("{ viewer { " + "username " * 2100 + "} }", "token", id="tokens"),
    ],
)
def test_oversized_documents_are_refused_before_any_sql(
    client: Client, query: str, needle: str
) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/graphql/", {"query": query}, content_type="application/json")
    body = response.json()
    assert needle in json.dumps(body["errors"]).lower()
    assert "data" not in body or body["data"] is None
    assert len(queries) == 0


@pytest.mark.django_db
def test_page_size_and_cost_are_checked_with_the_variables_before_resolvers(
    gql: GQL, token: str, workspace: Workspace
) -> None:
    query = """query($n: Int) { collections(first: $n) { edges { node {
      assets(first: $n) { edges { node { id renditions { url } } } } } } } }"""
    with CaptureQueriesContext(connection) as queries:
        too_big = gql(query, {"n": 101}, token)
    assert _codes(too_big) == ["PAGE_SIZE_EXCEEDED"]
    costly = gql(query, {"n": 100}, token)
    assert _codes(costly) == ["QUERY_TOO_COSTLY"]
    # Only the authentication lookups ran; no resolver touched a table.
    tables = " ".join(q["sql"] for q in queries.captured_queries)
    assert "assets_" not in tables
    assert gql(query, {"n": 10}, token)["data"]["collections"]["edges"] == []


@pytest.mark.django_db
def test_limits_apply_under_node_and_nodes(gql: GQL, token: str, workspace: Workspace) -> None:
    """`node` and `nodes` return an interface: what is selected under it is priced on the
    costliest type it can be, and `nodes` once per id asked for."""
    workspace_id = global_id("Workspace", workspace.pk)
    pages = """query($w: ID!, $n: Int) { node(id: $w) { ... on Workspace { collections(first: $n)
      { edges { node { assets(first: $n) { edges { node { id renditions { url } } } } } } } } } }"""
    assert _codes(gql(pages, {"w": workspace_id, "n": 100}, token)) == ["QUERY_TOO_COSTLY"]
    assert _codes(gql(pages, {"w": workspace_id, "n": 101}, token)) == ["PAGE_SIZE_EXCEEDED"]
    assert _codes(gql(pages, {"w": workspace_id, "n": -3}, token)) == ["PAGE_SIZE_INVALID"]
    found = gql(pages, {"w": workspace_id, "n": 10}, token)["data"]["node"]
    assert found == {"collections": {"edges": []}}

    through_a_fragment = """query($ids: [ID!]!) { nodes(ids: $ids) { ...W } }
      fragment W on Workspace { collections(first: 100) { edges { node { id name } } } }"""
    few = gql(through_a_fragment, {"ids": [workspace_id] * 2}, token)
    assert few["data"]["nodes"] == [{"collections": {"edges": []}}] * 2
    many = gql(through_a_fragment, {"ids": [workspace_id] * 100}, token)
    assert _codes(many) == ["QUERY_TOO_COSTLY"]


@pytest.mark.django_db
def test_a_page_size_variable_left_out_or_defaulted_is_no_error(gql: GQL, token: str) -> None:
    left_out = "query($n: Int, $a: String) { assets(first: $n, after: $a) { totalCount } }"
    assert gql(left_out, {}, token) == {"data": {"assets": {"totalCount": 0}}}
    defaulted = "query($n: Int = 5) { assets(first: $n) { totalCount } }"
    assert gql(defaulted, {}, token) == {"data": {"assets": {"totalCount": 0}}}
    too_big_by_default = "query($n: Int = 500) { assets(first: $n) { totalCount } }"
    assert _codes(gql(too_big_by_default, {}, token)) == ["PAGE_SIZE_EXCEEDED"]


@pytest.mark.django_db
def test_batches_are_limited(client: Client) -> None:
    batch = [{"query": "{ viewer { username } }"}] * 11
    response = client.post("/graphql/", batch, content_type="application/json")
    assert response.status_code == 400
    ok = client.post("/graphql/", batch[:3], content_type="application/json")
    assert ok.status_code == 200
    assert len(ok.json()) == 3


@pytest.mark.django_db
def test_a_token_over_its_rate_gets_429_with_retry_after(
    gql: GQL, token: str, settings: Any
) -> None:
    settings.DEPOT_RATE_LIMIT_TOKEN = (3, 60)
    statuses = [gql.post("{ viewer { username } }", token=token).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = gql.post("{ viewer { username } }", token=token)
    assert limited.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert 1 <= int(limited["Retry-After"]) <= 60


@pytest.mark.django_db
def test_an_address_over_its_rate_gets_429(client: Client, settings: Any) -> None:
    settings.DEPOT_RATE_LIMIT_IP = (2, 60)
    statuses = [
        client.post(
            "/graphql/", {"query": "{ viewer { username } }"}, content_type="application/json"
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]


@pytest.mark.django_db
def test_failed_logins_are_throttled(owner: User, settings: Any) -> None:
    settings.DEPOT_LOGIN_FAILURES = (3, 900)
    browser = Client()
    for _ in range(3):
        failed = browser.post("/login/", {"username": "owner", "password": "wrong"})
        assert failed.status_code == 200
    refused = browser.post("/login/", {"username": "owner", "password": "pw-for-tests"})
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert "_auth_user_id" not in browser.session


@pytest.mark.django_db
def test_introspection_and_suggestions_follow_the_setting(client: Client, settings: Any) -> None:
    # The schema is built once, so production's settings are checked in a fresh process.
    import subprocess
    import sys

    script = (
        "import django, json; django.setup();"
        "from schema import schema;"
        "r = schema.execute_sync('{ __schema { types { name } } }');"
        "s = schema.execute_sync('{ viewr { username } }');"
        "print(json.dumps([bool(r.errors), 'Did you mean' in str(s.errors)]))"
    )
    env_prod = {
        "DEPOT_ENV": "production",
        "DJANGO_SECRET_KEY": "x" * 50,
        "DJANGO_SETTINGS_MODULE": "project.settings",
    }
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith("DEPOT_GRAPHQL")}
    production = subprocess.run(
        [sys.executable, "-c", script],
        env={**base, **env_prod},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(production.stdout.strip().splitlines()[-1]) == [True, False]
    development = client.post(
        "/graphql/",
        {"query": "{ __schema { queryType { name } } }"},
        content_type="application/json",
    ).json()
    assert development["data"]["__schema"]["queryType"]["name"] == "Query"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "YXJyYXljb25uZWN0aW9uOmFiYw==",
        "b3RoZXI6MQ==",
        "YXJyYXljb25uZWN0aW9uOi0x",
        # arrayconnection:9999999999999999999, past a bigint: Postgres refused the OFFSET
        "YXJyYXljb25uZWN0aW9uOjk5OTk5OTk5OTk5OTk5OTk5OTk=",
        # arrayconnection: and 5,000 nines: Python refused to read the number
        base64.b64encode(b"arrayconnection:" + b"9" * 5000).decode(),
    ],
    ids=["not-base64", "not-a-number", "not-ours", "negative", "past-a-bigint", "too-long"],
)
def test_a_cursor_no_connection_gave_out_gets_a_code(gql: GQL, token: str, cursor: str) -> None:
    for place in ("after", "before"):
        query = f'{{ assets(first: 2, {place}: "{cursor}") {{ totalCount }} }}'
        assert _codes(gql(query, {}, token)) == ["INVALID_CURSOR"]
    for ours in ("YXJyYXljb25uZWN0aW9uOjA=", "YXJyYXljb25uZWN0aW9uOjk5OTk5OTk5OTk5OTk5OTk5OQ=="):
        # arrayconnection:0, and an offset of 18 digits (past every page, but a number)
        assert "errors" not in gql(
            f'{{ assets(first: 2, after: "{ours}") {{ totalCount }} }}', {}, token
        )


@pytest.mark.django_db
def test_text_with_a_nul_character_is_refused_with_a_code(
    gql: GQL, token: str, workspace: Workspace
) -> None:
    """Postgres stores no such text: every write or filter with it failed unexpectedly."""
    create = """mutation($w: ID!, $n: String!) { collectionCreate(input: {workspaceId: $w,
      name: $n}) { collection { name } errors { code } } }"""
    w = global_id("Workspace", workspace.pk)
    assert _codes(gql(create, {"w": w, "n": "a\x00b"}, token)) == ["INVALID_INPUT"]
    literal = (
        'mutation($w: ID!) { collectionCreate(input: {workspaceId: $w, name: "a\\u0000b"}) '
        "{ errors { code } } }"
    )
    assert _codes(gql(literal, {"w": w}, token)) == ["INVALID_INPUT"]
    filtered = '{ assets(filters: {titleContains: "x\\u{0}"}) { totalCount } }'
    assert _codes(gql(filtered, {}, token)) == ["INVALID_INPUT"]
    escaped = gql(create, {"w": w, "n": "a\\u0000b"}, token)  # a backslash, not a NUL
    assert escaped["data"]["collectionCreate"]["collection"] == {"name": "a\\u0000b"}
