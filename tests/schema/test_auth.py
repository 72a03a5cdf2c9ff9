"""Who may call what: tokens, sessions with CSRF, roles, scopes, and other workspaces."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from domain.accounts.models import ApiToken, User, Workspace
from domain.assets.models import Collection
from domain.common.ids import global_id
from tests.conftest import GQL

CREATE = """mutation($i: CollectionCreateInput!) {
  collectionCreate(input: $i) { collection { id name } errors { code message path } }
}"""
VIEWER = "{ viewer { username memberships { role workspace { name permission } } } }"


def _create(gql: GQL, workspace: Workspace, token: str | None, name: str = "Shots") -> dict:
    body = gql(
        CREATE, {"i": {"workspaceId": global_id("Workspace", workspace.pk), "name": name}}, token
    )
    return dict(body["data"]["collectionCreate"])


@pytest.mark.django_db
def test_a_token_acts_for_its_user_in_its_workspace(gql: GQL, token: str) -> None:
    body = gql(VIEWER, token=token)
    assert body["data"]["viewer"] == {
        "username": "owner",
        "memberships": [{"role": "OWNER", "workspace": {"name": "Acme", "permission": "WRITE"}}],
    }


@pytest.mark.django_db
def test_without_credentials_reads_are_empty_and_writes_refused(
    gql: GQL, workspace: Workspace
) -> None:
    assert gql(VIEWER)["data"]["viewer"] is None
    assert gql("{ workspaces { totalCount } }")["data"]["workspaces"]["totalCount"] == 0
    result = _create(gql, workspace, None)
    assert result["errors"][0]["code"] == "UNAUTHENTICATED"
    assert not Collection.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header", ["Bearer dpt_not-a-real-token", "Bearer ", "Basic abc", "Bearer x", "", " "]
)
def test_a_wrong_token_is_a_401_with_a_code(client: Client, header: str) -> None:
    response = client.post(
        "/graphql/",
        data={"query": "{ viewer { username } }"},
        content_type="application/json",
        headers={"Authorization": header},
    )
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_TOKEN"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_expired_and_revoked_tokens_stop_working(gql: GQL, make_token: Callable[..., str]) -> None:
    expired = make_token("read", expires_at=timezone.now() - timedelta(seconds=1))
    assert gql.post(VIEWER, token=expired).status_code == 401
    revoked = make_token("read")
    ApiToken.objects.filter(prefix=revoked[:12]).update(revoked_at=timezone.now())
    assert gql.post(VIEWER, token=revoked).status_code == 401


@pytest.mark.django_db
def test_a_read_only_token_cannot_write(
    gql: GQL, workspace: Workspace, make_token: Callable[..., str]
) -> None:
    result = _create(gql, workspace, make_token("read"))
    assert result == {
        "collection": None,
        "errors": [
            {
                "code": "FORBIDDEN",
                "message": "This token is read-only.",
                "path": None,
            }
        ],
    }
    assert not Collection.objects.exists()


@pytest.mark.django_db
def test_a_token_never_exceeds_its_users_role(
    gql: GQL, workspace: Workspace, viewer_user: User, make_token: Callable[..., str]
) -> None:
    result = _create(gql, workspace, make_token("read", "write", "admin", user=viewer_user))
    assert result["errors"][0]["code"] == "FORBIDDEN"
    assert not Collection.objects.exists()


@pytest.mark.django_db
def test_another_workspace_is_indistinguishable_from_a_missing_one(
    gql: GQL, token: str, other_workspace: Workspace
) -> None:
    foreign = _create(gql, other_workspace, token)
    missing = gql(
        CREATE, {"i": {"workspaceId": global_id("Workspace", 999_999), "name": "Shots"}}, token
    )["data"]["collectionCreate"]
    assert foreign == missing
    assert foreign["errors"][0]["code"] == "NOT_FOUND"
    assert not Collection.objects.filter(workspace=other_workspace).exists()
    hidden = Collection.objects.create(workspace=other_workspace, name="Private")
    for query, name in [
        ("query($id: ID!) { collection(id: $id) { name } }", "Collection"),
        ("query($id: ID!) { asset(id: $id) { title } }", "Asset"),
        ("query($id: ID!) { job(id: $id) { kind } }", "Job"),
    ]:
        field = query.split("{ ")[1].split("(")[0]
        pk = hidden.pk if name == "Collection" else 999_999
        assert gql(query, {"id": global_id(name, pk)}, token)["data"][field] is None
    listed = gql(
        "query($w: ID!) { collections(workspaceId: $w) { totalCount } }",
        {"w": global_id("Workspace", other_workspace.pk)},
        token,
    )
    assert listed["data"] is None
    # The argument it is about, as a mutation's error has it in `path`.
    assert listed["errors"][0]["extensions"] == {"code": "NOT_FOUND", "inputPath": ["workspaceId"]}


@pytest.mark.django_db
def test_an_id_of_the_wrong_type_is_not_found(gql: GQL, token: str, workspace: Workspace) -> None:
    result = gql(CREATE, {"i": {"workspaceId": global_id("Job", workspace.pk), "name": "x"}}, token)
    assert result["data"]["collectionCreate"]["errors"][0]["code"] == "NOT_FOUND"


@pytest.mark.django_db
def test_a_cookie_session_needs_the_csrf_token(owner: User, workspace: Workspace) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    query = {"i": {"workspaceId": global_id("Workspace", workspace.pk), "name": "Shots"}}
    import json

    body = json.dumps({"query": CREATE, "variables": query})
    refused = browser.post("/graphql/", data=body, content_type="application/json")
    assert refused.status_code == 403
    assert not Collection.objects.exists()

    page = browser.get("/")
    csrf = page.cookies["csrftoken"].value
    accepted = browser.post(
        "/graphql/", data=body, content_type="application/json", headers={"X-CSRFToken": csrf}
    )
    assert accepted.status_code == 200
    assert accepted.json()["data"]["collectionCreate"]["errors"] == []

    foreign = browser.post(
        "/graphql/",
        data=json.dumps(
            {"query": CREATE, "variables": {**query, "i": {**query["i"], "name": "B"}}}
        ),
        content_type="application/json",
        headers={"X-CSRFToken": csrf, "Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    assert Collection.objects.count() == 1


@pytest.mark.django_db
def test_get_never_runs_a_mutation(client: Client, token: str, workspace: Workspace) -> None:
    response = client.get(
        "/graphql/",
        {"query": 'mutation { jobCancel(id: "Sm9iOjE=") { errors { code } } }'},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    assert response.status_code in (400, 405)
