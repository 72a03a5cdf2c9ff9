"""Credential re-checks of open sockets: shared per user and credential, at once on a nudge."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from domain.accounts.actor import Actor
from domain.accounts.members import member_add, member_remove
from domain.accounts.models import ApiToken, Membership, Role, User, Workspace
from domain.accounts.selectors import actor_still_valid
from domain.accounts.services import membership_add
from domain.accounts.tokens_service import token_revoke
from realtime import consumer as consumer_module
from realtime import publish
from realtime.checks import SharedChecks
from tests.realtime.sockets import Socket, close_db, run


def test_concurrent_askers_share_one_check_and_a_later_one_starts_anew() -> None:
    calls = 0

    async def check() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return calls

    async def scenario() -> tuple[list[int], int, int]:
        checks = SharedChecks()
        results = await asyncio.gather(*(checks.run("k", 0.0, check) for _ in range(100)))
        reused = await checks.run("k", 0.0, check)  # still fresh enough for `since`
        started = asyncio.get_running_loop().time()
        later = await checks.run("k", started + 1e9, check)  # needs one started after `since`
        return results, reused, later

    results, reused, later = asyncio.run(scenario())
    assert results == [1] * 100
    assert reused == 1
    assert later == 2
    assert calls == 2


def test_a_failed_check_is_not_reused_and_a_cancelled_asker_does_not_cancel_it() -> None:
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        if attempts == 1:
            raise ConnectionError("database down")
        return "ok"

    async def scenario() -> tuple[str, str]:
        checks = SharedChecks()
        with pytest.raises(ConnectionError):
            await checks.run("k", 0.0, flaky)
        impatient = asyncio.ensure_future(checks.run("k", 0.0, flaky))
        patient = asyncio.ensure_future(checks.run("k", 0.0, flaky))
        await asyncio.sleep(0)
        impatient.cancel()
        return await patient, await checks.run("k", 0.0, flaky)

    assert asyncio.run(scenario()) == ("ok", "ok")
    assert attempts == 2


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_nudge_checks_a_users_sockets_once_and_a_revoked_token_closes_them_all(
    workspace: Workspace, token: str, owner: User
) -> None:
    checked: list[Any] = []

    def counting(*, actor: Actor, secret: str | None, session_key: str | None) -> Actor | None:
        checked.append(secret)
        return actor_still_valid(actor=actor, secret=secret, session_key=session_key)

    async def scenario() -> list[int | None]:
        sockets = [Socket() for _ in range(5)]
        try:
            for socket in sockets:
                await socket.open(token)
            await asyncio.sleep(0.3)  # every socket joined its user's group
            # A change that keeps the token valid: one check for the five sockets.
            await sync_to_async(_nudge)(owner.pk)
            await _until(lambda: len(checked) >= 1)
            await asyncio.sleep(0.3)
            assert len(checked) == 1
            # The token is revoked: one more check, and all five sockets close with 4403.
            await sync_to_async(_revoke)(owner, token)
            return [await socket.closed() for socket in sockets]
        finally:
            await sync_to_async(close_db)()

    with mock.patch.object(consumer_module, "actor_still_valid", counting):
        codes = asyncio.run(scenario())
    assert codes == [4403] * 5
    assert len(checked) == 2


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_removing_a_member_closes_their_token_sockets_and_refuses_new_ones(
    workspace: Workspace, owner: User, make_user: Any, make_token: Any
) -> None:
    member = make_user("member")
    membership_add(workspace=workspace, user=member, role=Role.EDITOR)
    secret = make_token("read", user=member)

    async def scenario() -> tuple[list[int | None], dict[str, Any]]:
        sockets = [Socket() for _ in range(2)]
        for socket in sockets:
            await socket.open(secret)  # acked once it joined its user's group
        await sync_to_async(_remove)(owner, member, workspace)
        codes = [await socket.closed() for socket in sockets]
        return codes, await _init_refused(secret)

    codes, refused = run(scenario)
    assert codes == [4403, 4403]
    assert refused == {"type": "websocket.close", "code": 4403, "reason": "Forbidden"}


@pytest.mark.django_db(transaction=True)
def test_a_token_whose_membership_is_gone_is_refused_at_connection_init(
    workspace: Workspace, make_user: Any, make_token: Any
) -> None:
    """Deleted without the service, so not revoked: refused as a revoked token is."""
    member = make_user("member")
    membership_add(workspace=workspace, user=member, role=Role.EDITOR)
    secret = make_token("read", user=member)
    Membership.objects.filter(user=member).delete()
    revoked = make_token("read")
    ApiToken.objects.filter(prefix=revoked[:12]).update(revoked_at=timezone.now())

    async def scenario() -> list[dict[str, Any]]:
        return [await _init_refused(secret), await _init_refused(revoked)]

    gone, as_revoked = run(scenario)
    assert gone == as_revoked == {"type": "websocket.close", "code": 4403, "reason": "Forbidden"}


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_membership_made_again_outside_the_services_revives_no_token_socket(
    workspace: Workspace, owner: User, make_user: Any, make_token: Any
) -> None:
    """The membership is deleted as the admin does and the member added back by the service:
    the socket opened with the old token closes at its next check (it stayed open, its token
    valid again), a new socket with it is refused, one with a token issued after is not."""
    member = make_user("member")
    membership_add(workspace=workspace, user=member, role=Role.EDITOR)
    secret = make_token("read", user=member)

    def delete_and_add_again() -> None:
        Membership.objects.filter(user=member, workspace=workspace).delete()
        member_add(workspace=workspace, login="member", role=Role.EDITOR, actor=Actor(user=owner))

    async def scenario() -> tuple[int | None, dict[str, Any], str]:
        socket = Socket()
        await socket.open(secret)  # acked once it joined its user's group
        await sync_to_async(delete_and_add_again)()
        # What the periodic check (DEPOT_WS_RECHECK_SECONDS) would do, now.
        await sync_to_async(_nudge)(member.pk)
        code = await socket.closed(wait=5)
        fresh = Socket()
        await fresh.open(await sync_to_async(make_token)("read", user=member))
        await fresh.close()
        return code, await _init_refused(secret), "acked"

    code, refused, fresh = run(scenario)
    assert code == 4403
    assert refused == {"type": "websocket.close", "code": 4403, "reason": "Forbidden"}
    assert fresh == "acked"


async def _init_refused(secret: str) -> dict[str, Any]:
    """What the server answers a connection_init with this token."""
    socket = Socket()
    await socket.app.send_input({"type": "websocket.connect"})
    assert (await socket.app.receive_output(5))["type"] == "websocket.accept"
    await socket.send({"type": "connection_init", "payload": {"authToken": secret}})
    return dict(await socket.app.receive_output(5))


def _remove(owner: User, member: User, workspace: Workspace) -> None:
    membership = Membership.objects.get(user=member, workspace=workspace)
    member_remove(membership=membership, actor=Actor(user=owner))
    publish.flush()


def _nudge(user_id: int) -> None:
    from django.db import transaction

    with transaction.atomic():
        publish.credentials_changed_after_commit(user_id)
    publish.flush()


def _revoke(owner: User, secret: str) -> None:
    from domain.accounts.selectors import actor_from_bearer

    actor = actor_from_bearer(secret=secret)
    assert actor.token is not None
    token_revoke(token=ApiToken.objects.get(pk=actor.token.pk), actor=Actor(user=owner))
    publish.flush()


async def _until(condition: Any, wait: float = 10) -> None:
    end = asyncio.get_running_loop().time() + wait
    while not condition():
        assert asyncio.get_running_loop().time() < end, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.django_db
def test_a_session_stands_until_its_logout_or_a_password_change(owner: User) -> None:
    """For a socket authenticated by its session cookie, the re-check asks about that session,
    not only about the user."""
    from django.test import Client

    actor = Actor(user=owner)
    browser = Client()
    browser.force_login(owner)
    key = browser.session.session_key
    assert actor_still_valid(actor=actor, secret=None, session_key=key) is not None
    other = Client()
    other.force_login(owner)
    other.logout()
    assert actor_still_valid(actor=actor, secret=None, session_key=key) is not None
    browser.logout()
    assert actor_still_valid(actor=actor, secret=None, session_key=key) is None

    browser.force_login(owner)
    key = browser.session.session_key
    owner.set_password("a new password")
    owner.save()
    assert actor_still_valid(actor=actor, secret=None, session_key=key) is None


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_logging_out_closes_the_sockets_of_that_session(owner: User, workspace: Workspace) -> None:
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import Client

    browser = Client()
    browser.force_login(owner)
    session = SessionStore(browser.session.session_key)

    async def scenario() -> int | None:
        socket = Socket(user=owner, session=session)
        await socket.app.send_input({"type": "websocket.connect"})
        assert (await socket.app.receive_output(5))["type"] == "websocket.accept"
        await socket.send({"type": "connection_init"})
        assert "connection_ack" in (await socket.app.receive_output(5))["text"]
        await asyncio.sleep(0.3)  # the socket joined its user's group
        await sync_to_async(_log_out)(browser)
        return await socket.closed()

    assert run(scenario) == 4403


def _log_out(browser: Any) -> None:
    browser.logout()
    publish.flush()
