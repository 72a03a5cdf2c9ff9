"""The events query shows token events only to those who may see the token (the apiTokens
rule: owners with admin permission, and the token's own user), and a page still means what it
meant: fewer events than asked for only at the end of the stream."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import transaction
from django.test import Client

from domain.accounts.models import ApiToken, Role, TokenScope, User, Workspace
from domain.accounts.services import api_token_create, membership_add
from domain.common.ids import global_id
from domain.jobs import events
from domain.jobs.models import Event
from tests.conftest import GQL

EVENTS = """query($w: ID!, $a: Int!, $f: Int!) { events(workspaceId: $w, after: $a, first: $f) {
  sequence type payload } }"""


def _session(user: User) -> GQL:
    client = Client()
    client.force_login(user)
    return GQL(client)


def _seen(
    gql: GQL, workspace: Workspace, after: int = 0, first: int = 100
) -> list[tuple[int, str]]:
    variables = {"w": global_id("Workspace", workspace.pk), "a": after, "f": first}
    page = gql(EVENTS, variables)["data"]["events"]
    return [(event["sequence"], event["type"]) for event in page]


@pytest.fixture
def viewer(make_user: Callable[..., User], workspace: Workspace) -> User:
    user = make_user("viewer")
    membership_add(workspace=workspace, user=user, role=Role.VIEWER)  # 2
    return user


def _token(user: User, workspace: Workspace) -> ApiToken:
    token, _ = api_token_create(
        workspace=workspace,
        user=user,
        name=f"{user.username}'s deploy key",
        scopes=[TokenScope.READ],
    )
    return token


@pytest.mark.django_db
def test_token_events_are_for_owners_and_the_tokens_user(
    owner: User, viewer: User, workspace: Workspace, make_user: Callable[..., User]
) -> None:
    editor = make_user("editor")
    membership_add(workspace=workspace, user=editor, role=Role.EDITOR)  # 3
    _token(owner, workspace)  # 4
    _token(viewer, workspace)  # 5
    owners = _seen(_session(owner), workspace)
    assert [sequence for sequence, _ in owners] == [1, 2, 3, 4, 5]
    assert _seen(_session(viewer), workspace) == [
        (1, "workspace.created"),
        (2, "membership.changed"),
        (3, "membership.changed"),
        (5, "token.created"),
    ]
    assert [sequence for sequence, _ in _seen(_session(editor), workspace)] == [1, 2, 3]
    # Their payloads say whose token it is, and the viewer's own still carries its name.
    own = _session(viewer)(EVENTS, {"w": global_id("Workspace", workspace.pk), "a": 4, "f": 1})
    assert own["data"]["events"][0]["payload"] == {
        "tokenId": global_id("ApiToken", ApiToken.objects.get(user=viewer).pk),
        "userId": global_id("User", viewer.pk),
        "name": "viewer's deploy key",
    }


@pytest.mark.django_db
def test_through_a_token_the_rule_is_the_tokens_permission(
    gql: GQL,
    owner: User,
    viewer: User,
    workspace: Workspace,
    make_token: Callable[..., str],
) -> None:
    _token(viewer, workspace)  # 3
    admin = make_token("read", "admin")  # 4
    write = make_token("read", "write")  # 5
    variables = {"w": global_id("Workspace", workspace.pk), "a": 0, "f": 100}

    def sequences(secret: str) -> list[int]:
        return [e["sequence"] for e in gql(EVENTS, variables, secret)["data"]["events"]]

    assert sequences(admin) == [1, 2, 3, 4, 5]
    assert sequences(write) == [1, 2, 4, 5]  # the owner's own tokens, not the viewer's


@pytest.mark.django_db
def test_a_token_event_recorded_without_its_user_is_for_owners_only(
    owner: User, viewer: User, workspace: Workspace
) -> None:
    with transaction.atomic():  # as recorded before events named the token's user
        events.record(workspace.pk, "token.revoked", {"tokenId": global_id("ApiToken", 1)})
    assert _seen(_session(owner), workspace, after=2) == [(3, "token.revoked")]
    assert _seen(_session(viewer), workspace, after=2) == []


@pytest.mark.django_db
def test_a_page_is_full_unless_the_stream_ends(
    owner: User, viewer: User, workspace: Workspace
) -> None:
    for _ in range(5):
        _token(owner, workspace)  # 3-7: hidden from the viewer
    with transaction.atomic():
        events.record(workspace.pk, "test.tick", {})  # 8
        events.record(workspace.pk, "test.tick", {})  # 9
    as_viewer = _session(viewer)
    assert _seen(as_viewer, workspace, after=2, first=2) == [(8, "test.tick"), (9, "test.tick")]
    assert _seen(as_viewer, workspace, after=2, first=1) == [(8, "test.tick")]
    assert _seen(as_viewer, workspace, after=8, first=3) == [(9, "test.tick")]
    assert _seen(as_viewer, workspace, after=9) == []
    assert Event.objects.filter(workspace=workspace).count() == 9
