"""Token events in the events subscription reach only those who may see the token (owners,
through a session or an admin token, and the token's own user), replayed and live, on the
shared rendering path and on the general one, and when filling a gap the live path left;
everyone else's stream skips them and goes on."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from domain.accounts.actor import Actor
from domain.accounts.models import ApiToken, Role, TokenScope, User, Workspace
from domain.accounts.services import api_token_create, membership_add
from domain.accounts.tokens_service import token_revoke
from domain.common.ids import global_id
from domain.jobs import events
from realtime import publish
from tests.realtime.sockets import Socket, run

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# A plain selection takes the shared rendering path; a fragment takes the general one.
PLAIN = "subscription($w: ID!) { events(workspaceId: $w, after: 0) { sequence type } }"
FRAGMENT = """subscription($w: ID!) { events(workspaceId: $w, after: 0) { ...E } }
fragment E on Event { sequence type }"""


def _tokens_meanwhile(owner: User, viewer: User, workspace: Workspace, lost: bool) -> None:
    """Live: one token of each made, then each revoked (their live messages `lost`, so the
    subscriptions fill the gap from Postgres); then an ordinary event."""
    with mock.patch.object(publish, "publish_events") if lost else nullcontext():
        owners = _make(owner, workspace)
        viewers = _make(viewer, workspace)
        token_revoke(token=viewers, actor=Actor(user=viewer))
        token_revoke(token=owners, actor=Actor(user=owner))
    with transaction.atomic():
        events.record(workspace.pk, "test.tick", {})
    publish.flush()


def _make(user: User, workspace: Workspace) -> ApiToken:
    token, _ = api_token_create(
        workspace=workspace, user=user, name=f"{user.username} ci", scopes=[TokenScope.READ]
    )
    return token


@pytest.mark.parametrize(
    ("query", "lost"),
    [(PLAIN, False), (FRAGMENT, False), (PLAIN, True)],
    ids=["shared", "general", "gap-filled"],
)
def test_token_events_reach_owners_and_the_tokens_user_only(
    owner: User,
    workspace: Workspace,
    make_user: Callable[..., User],
    make_token: Callable[..., str],
    query: str,
    lost: bool,
) -> None:
    viewer = make_user("viewer")
    membership_add(workspace=workspace, user=viewer, role=Role.VIEWER)  # 2
    as_owner = make_token("read", "admin")  # 3: token.created, the owner's
    as_viewer = make_token("read", user=viewer)  # 4: token.created, the viewer's
    owner_write = make_token("read", "write")  # 5: the owner's again, without admin

    async def scenario() -> list[list[tuple[int, str]]]:
        sockets = {name: Socket() for name in ("owner", "viewer", "write-only owner")}
        for socket, secret in zip(
            sockets.values(), (as_owner, as_viewer, owner_write), strict=True
        ):
            await socket.open(secret)
            await socket.subscribe("s", query, {"w": global_id("Workspace", workspace.pk)})
        # Replayed (the replay's one page is read before anything is recorded live): the
        # token events of 3-5 only for those who may see those tokens.
        assert _seen(await sockets["owner"].collect("s", 5))[-1] == (5, "token.created")
        assert _seen(await sockets["viewer"].collect("s", 3))[-1] == (4, "token.created")
        assert _seen(await sockets["write-only owner"].collect("s", 4))[-1] == (5, "token.created")
        await sync_to_async(_tokens_meanwhile)(owner, viewer, workspace, lost)  # 6-9, then 10
        counts = {"owner": 10, "viewer": 6, "write-only owner": 7}
        return [_seen(await sockets[name].collect("s", count)) for name, count in counts.items()]

    owner_saw, viewer_saw, write_only_saw = run(scenario)
    assert owner_saw == [
        (1, "workspace.created"),
        (2, "membership.changed"),
        (3, "token.created"),
        (4, "token.created"),
        (5, "token.created"),
        (6, "token.created"),
        (7, "token.created"),
        (8, "token.revoked"),
        (9, "token.revoked"),
        (10, "test.tick"),
    ]
    # The viewer: their own tokens' events (4, 7, 8), none of the owner's.
    assert viewer_saw == [
        (1, "workspace.created"),
        (2, "membership.changed"),
        (4, "token.created"),
        (7, "token.created"),
        (8, "token.revoked"),
        (10, "test.tick"),
    ]
    # A token without the admin scope lists only its user's tokens (apiTokens), even an
    # owner's: the owner's own (3, 5, 6, 9), not the viewer's.
    assert write_only_saw == [
        (1, "workspace.created"),
        (2, "membership.changed"),
        (3, "token.created"),
        (5, "token.created"),
        (6, "token.created"),
        (9, "token.revoked"),
        (10, "test.tick"),
    ]


def _seen(frames: list[str]) -> list[tuple[int, str]]:
    seen = []
    for frame in frames:
        message: dict[str, Any] = json.loads(frame)
        assert message["type"] == "next", message
        event = message["payload"]["data"]["events"]
        seen.append((event["sequence"], event["type"]))
    return seen
