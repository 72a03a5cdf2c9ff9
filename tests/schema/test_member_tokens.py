"""A token works only through the membership it was issued under: removing the member (or the
member leaving) revokes their tokens there, and so does deleting the membership any other way
(the admin, a shell, a cascade); adding the member again revives none of them (HTTP 401,
INVALID_TOKEN), whereas a token issued after works."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from domain.accounts.models import ApiToken, Membership, Role, User, Workspace
from domain.accounts.services import membership_add
from domain.common.ids import global_id
from domain.jobs.models import Event
from tests.conftest import GQL

VIEWER = "{ viewer { username } }"
REMOVE = """mutation($w: ID!, $u: ID!) { memberRemove(workspaceId: $w, userId: $u) {
  removed errors { code } } }"""
LEAVE = """mutation($w: ID!) { workspaceLeave(workspaceId: $w) { removed errors { code } } }"""
ADD = """mutation($w: ID!, $l: String!) { memberAdd(workspaceId: $w, login: $l, role: EDITOR) {
  errors { code } } }"""


def _session(user: User) -> GQL:
    client = Client()
    client.force_login(user)
    return GQL(client)


def _refused(gql: GQL, secret: str) -> None:
    response = gql.post(VIEWER, token=secret)
    assert response.status_code == 401, response.content
    assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_TOKEN"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_removing_a_member_revokes_their_tokens_and_a_re_add_does_not_revive_them(
    gql: GQL,
    owner: User,
    member: User,
    workspace: Workspace,
    other_workspace: Workspace,
    make_token: Callable[..., str],
) -> None:
    membership_add(workspace=other_workspace, user=member, role=Role.EDITOR)
    first, second = make_token("read", user=member), make_token("read", "write", user=member)
    elsewhere = make_token("read", user=member, in_workspace=other_workspace)
    owners = make_token("read")
    assert gql(VIEWER, token=first)["data"]["viewer"]["username"] == "member"  # kept in process
    ws = global_id("Workspace", workspace.pk)
    before = Event.objects.filter(workspace=workspace).count()

    removed = _session(owner)(REMOVE, {"w": ws, "u": global_id("User", member.pk)})
    assert removed["data"]["memberRemove"] == {"removed": True, "errors": []}

    _refused(gql, first)
    _refused(gql, second)
    mine = ApiToken.objects.filter(user=member, workspace=workspace)
    assert all(token.revoked_at is not None for token in mine)
    # In the same transaction as the removal, with their events, in order.
    recorded = list(
        Event.objects.filter(workspace=workspace)
        .order_by("sequence")[before:]
        .values_list("type", "payload")
    )
    # The tokens go first: their locks are taken before the event counter's (no deadlock with
    # a revoke of one of them).
    assert [kind for kind, _ in recorded] == ["token.revoked", "token.revoked", "member.removed"]
    assert {payload["tokenId"] for _, payload in recorded[:2]} == {
        global_id("ApiToken", token.pk) for token in mine
    }
    # Other workspaces' tokens of that user, and other users' tokens, are untouched.
    assert gql(VIEWER, token=elsewhere)["data"]["viewer"]["username"] == "member"
    assert gql(VIEWER, token=owners)["data"]["viewer"]["username"] == "owner"

    # Back in the workspace: the old tokens stay dead; a new one works.
    assert _session(owner)(ADD, {"w": ws, "l": "member"})["data"]["memberAdd"]["errors"] == []
    _refused(gql, first)
    assert gql(VIEWER, token=make_token("read", user=member))["data"]["viewer"] is not None


@pytest.mark.django_db
def test_leaving_revokes_your_tokens_there(
    gql: GQL, member: User, workspace: Workspace, make_token: Callable[..., str]
) -> None:
    secret = make_token("read", "write", user=member)
    left = gql(LEAVE, {"w": global_id("Workspace", workspace.pk)}, secret)
    assert left["data"]["workspaceLeave"] == {"removed": True, "errors": []}
    _refused(gql, secret)
    assert ApiToken.objects.get(user=member).revoked_at is not None


@pytest.mark.django_db
def test_a_token_whose_membership_went_another_way_is_refused(
    gql: GQL, member: User, workspace: Workspace, make_token: Callable[..., str]
) -> None:
    """Deleted outside the services (the admin, a shell, a cascade): nothing revoked the
    token, and the bearer lookup, which reads the role in the same statement, refuses it."""
    secret = make_token("read", user=member)
    assert gql(VIEWER, token=secret)["data"]["viewer"]["username"] == "member"
    Membership.objects.filter(user=member, workspace=workspace).delete()
    _refused(gql, secret)


@pytest.mark.django_db
def test_a_membership_deleted_outside_the_services_and_made_again_revives_no_token(
    gql: GQL,
    owner: User,
    member: User,
    workspace: Workspace,
    other_workspace: Workspace,
    make_token: Callable[..., str],
) -> None:
    """Nothing revoked the token when the membership went (no service ran): it was refused
    while the membership was missing, then worked again once the member was added back."""
    membership_add(workspace=other_workspace, user=member, role=Role.EDITOR)
    secret = make_token("read", "write", user=member)
    elsewhere = make_token("read", user=member, in_workspace=other_workspace)
    assert gql(VIEWER, token=secret)["data"]["viewer"]["username"] == "member"  # kept in process

    Membership.objects.filter(user=member, workspace=workspace).delete()  # as the admin does
    _refused(gql, secret)
    ws = global_id("Workspace", workspace.pk)
    added = _session(owner)(ADD, {"w": ws, "l": "member"})["data"]["memberAdd"]
    assert added["errors"] == []

    _refused(gql, secret)
    tokens = """query($w: ID!) { workspace(id: $w) { apiTokens { edges { node {
      user { username } revokedAt } } } } }"""
    listed = _session(owner)(tokens, {"w": ws})["data"]["workspace"]["apiTokens"]["edges"]
    (revoked_at,) = [
        e["node"]["revokedAt"] for e in listed if e["node"]["user"]["username"] == "member"
    ]
    assert revoked_at is not None  # listed as what it is
    fresh = make_token("read", user=member)
    assert gql(VIEWER, token=fresh)["data"]["viewer"]["username"] == "member"
    # The same member's token of another workspace acted through another membership.
    assert gql(VIEWER, token=elsewhere)["data"]["viewer"]["username"] == "member"


@pytest.mark.django_db
def test_deleting_a_user_or_a_workspace_takes_their_tokens_with_the_memberships(
    gql: GQL, owner: User, member: User, workspace: Workspace, make_token: Callable[..., str]
) -> None:
    """Cascades through the membership and the token itself: no constraint is left dangling."""
    make_token("read", user=member)
    owners = make_token("read")
    member.delete()
    assert not ApiToken.objects.filter(user_id=member.pk).exists()
    assert gql(VIEWER, token=owners)["data"]["viewer"]["username"] == "owner"
    workspace.delete()
    assert not ApiToken.objects.exists()
    _refused(gql, owners)


@pytest.mark.django_db
def test_a_token_of_a_user_who_never_was_a_member_is_refused(
    gql: GQL, owner: User, other_workspace: Workspace, make_token: Callable[..., str]
) -> None:
    _refused(gql, make_token("read", user=owner, in_workspace=other_workspace))
