"""GraphQL over HTTP (the spec's media types and status codes) and persisted queries."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from django.test import Client

from tests.support.cache import clear_cache

GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def post(client: Client, body: Any, accept: str | None = None, **extra: Any) -> Any:
    headers = {"Accept": accept} if accept else {}
    return client.post(
        "/graphql/", json.dumps(body), content_type="application/json", headers=headers, **extra
    )


@pytest.mark.django_db
def test_graphql_response_json_is_used_when_accepted(client: Client) -> None:
    ok = post(client, {"query": "{ viewer { username } }"}, GRAPHQL_RESPONSE)
    assert ok.status_code == 200
    assert ok["Content-Type"] == GRAPHQL_RESPONSE
    assert ok.json() == {"data": {"viewer": None}}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    ["{ viewer { ", "{ nope }", "query($x: Int!) { viewer { username } }"],
    ids=["parse", "validation", "missing-variable"],
)
def test_request_errors_are_400_without_data_for_graphql_response_json(
    client: Client, query: str
) -> None:
    strict = post(client, {"query": query}, GRAPHQL_RESPONSE)
    assert strict.status_code == 400
    assert strict["Content-Type"] == GRAPHQL_RESPONSE
    assert "data" not in strict.json()
    assert strict.json()["errors"]
    legacy = post(client, {"query": query}, "application/json")
    assert legacy.status_code == 200
    assert legacy["Content-Type"].startswith("application/json")


@pytest.mark.django_db
def test_field_errors_are_still_200(client: Client) -> None:
    result = post(
        client,
        {"query": '{ events(workspaceId: "V29ya3NwYWNlOjE=") { sequence } }'},
        GRAPHQL_RESPONSE,
    )
    assert result.status_code == 200
    assert result.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"


@pytest.mark.django_db
def test_unacceptable_and_unsupported_requests(client: Client) -> None:
    assert post(client, {"query": "{ viewer { username } }"}, "text/plain").status_code == 406
    assert post(client, {"query": "{ viewer { username } }"}, "*/*").status_code == 200
    xml = client.post("/graphql/", "<q/>", content_type="application/xml")
    assert xml.status_code == 415
    broken = client.post("/graphql/", "{not json", content_type="application/json")
    assert broken.status_code == 400


@pytest.mark.django_db
def test_get_runs_queries_but_never_mutations(client: Client) -> None:
    query = client.get(
        "/graphql/", {"query": "{ viewer { username } }"}, headers={"Accept": "application/json"}
    )
    assert query.status_code == 200
    mutation = client.get(
        "/graphql/",
        {"query": 'mutation { jobCancel(id: "Sm9iOjE=") { errors { code } } }'},
        headers={"Accept": "application/json"},
    )
    assert mutation.status_code == 405


@pytest.mark.django_db
def test_automatic_persisted_queries(client: Client) -> None:
    query = "{ viewer { username } }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    unknown = post(client, {"extensions": extensions}).json()
    assert unknown["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    registered = post(client, {"query": query, "extensions": extensions}).json()
    assert registered == {"data": {"viewer": None}}
    by_hash = post(client, {"extensions": extensions}).json()
    assert by_hash == {"data": {"viewer": None}}
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    mismatch = post(client, {"query": query, "extensions": wrong}).json()
    assert mismatch["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"


@pytest.mark.django_db
def test_unexpected_errors_are_masked_with_a_request_id(
    client: Client, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from domain.accounts import selectors

    def boom(**kwargs: Any) -> Any:
        raise RuntimeError("SELECT secret FROM internals")

    monkeypatch.setattr(selectors, "workspace_list_for", boom)
    body = post(client, {"query": "{ workspaces { totalCount } }"}).json()
    [error] = body["errors"]
    assert error["message"] == "Unexpected error."
    assert "secret" not in json.dumps(body)
    request_id = error["extensions"]["requestId"]
    assert any(request_id in record.getMessage() for record in caplog.records)
