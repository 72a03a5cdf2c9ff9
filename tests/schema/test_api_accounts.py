"""Workspaces, members and API tokens through GraphQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from domain.accounts.models import ApiToken, Membership, Role, User, Workspace
from domain.common.ids import global_id
from tests.conftest import GQL


def session(user: User) -> GQL:
    client = Client()
    client.force_login(user)
    return GQL(client)


@pytest.mark.django_db
def test_a_signed_in_user_creates_a_workspace_and_owns_it(owner: User) -> None:
    as_owner = session(owner)
    create = """mutation($n: String!, $s: String!) { workspaceCreate(name: $n, slug: $s) {
      workspace { name slug permission memberships { role user { username } } }
      errors { code path } } }"""
    made = as_owner(create, {"n": "Studio", "s": "studio"})["data"]["workspaceCreate"]
    assert made["workspace"] == {
        "name": "Studio",
        "slug": "studio",
        "permission": "ADMIN",
        "memberships": [{"role": "OWNER", "user": {"username": "owner"}}],
    }
    again = as_owner(create, {"n": "Studio 2", "s": "studio"})["data"]["workspaceCreate"]
    assert again["errors"] == [{"code": "SLUG_TAKEN", "path": ["slug"]}]


@pytest.mark.django_db
def test_a_token_cannot_create_workspaces(gql: GQL, token: str) -> None:
    result = gql(
        """mutation { workspaceCreate(name: "X", slug: "x") { errors { code } } }""", token=token
    )
    assert result["data"]["workspaceCreate"]["errors"] == [{"code": "FORBIDDEN"}]


@pytest.mark.django_db
def test_owners_manage_members_and_one_owner_always_remains(
    owner: User, workspace: Workspace, make_user: Callable[..., User]
) -> None:
    alice = make_user("alice")
    alice.email = "alice@example.com"
    alice.save()
    as_owner = session(owner)
    ws = global_id("Workspace", workspace.pk)
    add = """mutation($w: ID!, $l: String!, $r: Role!) {
      memberAdd(workspaceId: $w, login: $l, role: $r) {
        membership { role user { id username } } errors { code } } }"""
    added = as_owner(add, {"w": ws, "l": "alice@example.com", "r": "VIEWER"})["data"]["memberAdd"]
    assert added["membership"]["role"] == "VIEWER"
    nobody = as_owner(add, {"w": ws, "l": "nobody", "r": "VIEWER"})["data"]["memberAdd"]
    assert nobody["errors"] == [{"code": "USER_NOT_FOUND"}]

    as_alice = session(alice)
    denied = as_alice(add, {"w": ws, "l": "stranger", "r": "OWNER"})["data"]["memberAdd"]
    assert denied["errors"][0]["code"] in {"FORBIDDEN", "USER_NOT_FOUND"}
    assert Membership.objects.filter(workspace=workspace).count() == 2

    change = """mutation($w: ID!, $u: ID!, $r: Role!) {
      memberRoleChange(workspaceId: $w, userId: $u, role: $r) {
        membership { role } errors { code } } }"""
    demote_self = as_owner(change, {"w": ws, "u": global_id("User", owner.pk), "r": "EDITOR"})
    assert demote_self["data"]["memberRoleChange"]["errors"] == [{"code": "LAST_OWNER"}]
    promote = as_owner(change, {"w": ws, "u": global_id("User", alice.pk), "r": "OWNER"})
    assert promote["data"]["memberRoleChange"]["membership"] == {"role": "OWNER"}

    leave = """mutation($w: ID!) { workspaceLeave(workspaceId: $w) { removed errors { code } } }"""
    assert as_owner(leave, {"w": ws})["data"]["workspaceLeave"] == {"removed": True, "errors": []}
    last = as_alice(leave, {"w": ws})["data"]["workspaceLeave"]
    assert last == {"removed": False, "errors": [{"code": "LAST_OWNER"}]}
    assert list(Membership.objects.filter(workspace=workspace).values_list("role", flat=True)) == [
        Role.OWNER
    ]


@pytest.mark.django_db
def test_tokens_are_created_once_listed_and_revoked(
    owner: User, workspace: Workspace, gql: GQL, make_token: Callable[..., str]
) -> None:
    as_owner = session(owner)
    ws = global_id("Workspace", workspace.pk)
    create = """mutation($i: ApiTokenCreateInput!) { apiTokenCreate(input: $i) {
      secret token { id name scopes prefix } errors { code } } }"""
    made = as_owner(create, {"i": {"workspaceId": ws, "name": "ci", "scopes": ["READ"]}})
    payload = made["data"]["apiTokenCreate"]
    secret = payload["secret"]
    assert secret.startswith("dpt_")
    assert payload["token"]["prefix"] == secret[:12]
    assert ApiToken.objects.filter(secret_hash__contains=secret).count() == 0  # only its hash
    assert gql("{ viewer { username } }", token=secret)["data"]["viewer"]["username"] == "owner"

    listing = as_owner(
        """query($w: ID!) { workspace(id: $w) { apiTokens { totalCount
      edges { node { name } } } } }""",
        {"w": ws},
    )
    assert {e["node"]["name"] for e in listing["data"]["workspace"]["apiTokens"]["edges"]} == {"ci"}

    # A write token cannot mint tokens; an admin token can.
    write = make_token("read", "write")
    refused = gql(create, {"i": {"workspaceId": ws, "name": "x", "scopes": ["ADMIN"]}}, write)
    assert refused["data"]["apiTokenCreate"]["errors"] == [{"code": "FORBIDDEN"}]

    revoke = (
        """mutation($id: ID!) { apiTokenRevoke(id: $id) { token { revokedAt } errors { code } } }"""
    )
    revoked = as_owner(revoke, {"id": payload["token"]["id"]})["data"]["apiTokenRevoke"]
    assert revoked["token"]["revokedAt"] is not None
    assert gql.post("{ viewer { username } }", token=secret).status_code == 401


@pytest.mark.django_db
def test_token_input_is_checked_and_a_token_made_by_a_token_expires_with_it(
    owner: User, workspace: Workspace, gql: GQL, make_token: Callable[..., str]
) -> None:
    create = """mutation($i: ApiTokenCreateInput!) { apiTokenCreate(input: $i) {
      token { expiresAt } errors { code path } } }"""
    ws = global_id("Workspace", workspace.pk)
    as_owner = session(owner)

    def made(token: str | None = None, **fields: Any) -> dict[str, Any]:
        variables = {"i": {"workspaceId": ws, "scopes": ["ADMIN"], **fields}}
        body = gql(create, variables, token) if token else as_owner(create, variables)
        return dict(body["data"]["apiTokenCreate"])

    naive = made(name="x", expiresAt="2035-01-01T00:00:00")
    assert naive["errors"] == [{"code": "INVALID_INPUT", "path": ["expiresAt"]}]
    assert made(name="x" * 121)["errors"] == [{"code": "INVALID_INPUT", "path": ["name"]}]
    assert made(name="x" * 120)["errors"] == []

    soon = timezone.now() + timedelta(minutes=5)
    short_lived = make_token("admin", expires_at=soon)
    for asked in (None, "2035-01-01T00:00:00Z"):
        minted = made(short_lived, name="minted", expiresAt=asked)
        assert minted["errors"] == []
        assert datetime.fromisoformat(minted["token"]["expiresAt"]) == soon
    sooner = (soon - timedelta(minutes=1)).isoformat()
    assert datetime.fromisoformat(
        made(short_lived, name="m", expiresAt=sooner)["token"]["expiresAt"]
    ) == (soon - timedelta(minutes=1))


@pytest.mark.django_db
def test_members_see_only_their_own_tokens(
    workspace: Workspace, viewer_user: User, make_token: Callable[..., str], gql: GQL
) -> None:
    make_token("read")  # the owner's
    mine = make_token("read", user=viewer_user)
    listing = gql(
        """query { workspaces(first: 5) { edges { node { apiTokens(first: 10) { edges { node {
      user { username } } } } } } } }""",
        token=mine,
    )
    tokens = listing["data"]["workspaces"]["edges"][0]["node"]["apiTokens"]["edges"]
    assert [t["node"]["user"]["username"] for t in tokens] == ["viewer"]


@pytest.mark.django_db
def test_permissions_are_read_again_only_after_a_mutation_that_changed_credentials(
    owner: User, workspace: Workspace
) -> None:
    """A mutation's payload sees the caller's new memberships (workspaceCreate above); one that
    changes no token, membership or user does not pay another read of them."""
    as_owner = session(owner)
    create = """mutation($i: CollectionCreateInput!) {
      collectionCreate(input: $i) { collection { name } errors { code } } }"""
    variables = {"i": {"workspaceId": global_id("Workspace", workspace.pk), "name": "Shots"}}
    with CaptureQueriesContext(connection) as queries:
        made = as_owner(create, variables)["data"]["collectionCreate"]
    assert made == {"collection": {"name": "Shots"}, "errors": []}
    membership_reads = [q for q in queries if 'FROM "accounts_membership"' in q["sql"]]
    assert len(membership_reads) == 1  # the caller's permissions, read once at admission

    workspace_create = """mutation { workspaceCreate(name: "Second", slug: "second") {
      workspace { permission } errors { code } } }"""
    with CaptureQueriesContext(connection) as queries:
        second = as_owner(workspace_create)["data"]["workspaceCreate"]
    assert second == {"workspace": {"permission": "ADMIN"}, "errors": []}
    membership_reads = [q for q in queries if 'FROM "accounts_membership"' in q["sql"]]
    assert len(membership_reads) == 2  # at admission, then again after the new membership


@pytest.mark.django_db
def test_invalid_input_is_a_typed_error_with_the_field(owner: User, workspace: Workspace) -> None:
    """Model validation (blank, too long, a bad slug) is an expected failure: INVALID_INPUT, the
    code of every other refusal of bad input, and the field's path, not an unexpected error."""
    as_owner = session(owner)
    create = """mutation($n: String!, $s: String!) { workspaceCreate(name: $n, slug: $s) {
      workspace { slug } errors { code path message } } }"""
    bad_slug = as_owner(create, {"n": "Studio", "s": "not a slug"})["data"]["workspaceCreate"]
    assert bad_slug["workspace"] is None
    assert [(e["code"], e["path"]) for e in bad_slug["errors"]] == [("INVALID_INPUT", ["slug"])]
    assert bad_slug["errors"][0]["message"]
    collection = """mutation($i: CollectionCreateInput!) {
      collectionCreate(input: $i) { collection { name } errors { code path } } }"""
    blank = as_owner(
        collection, {"i": {"workspaceId": global_id("Workspace", workspace.pk), "name": "  "}}
    )["data"]["collectionCreate"]
    assert blank == {"collection": None, "errors": [{"code": "INVALID_INPUT", "path": ["name"]}]}
    assert not Workspace.objects.filter(name="Studio").exists()
    token = """mutation($i: ApiTokenCreateInput!) {
      apiTokenCreate(input: $i) { token { name } errors { code path } } }"""
    no_scope = as_owner(
        token,
        {"i": {"workspaceId": global_id("Workspace", workspace.pk), "name": "ci", "scopes": []}},
    )["data"]["apiTokenCreate"]
    assert no_scope == {"token": None, "errors": [{"code": "INVALID_INPUT", "path": ["scopes"]}]}
    assert not ApiToken.objects.exists()
