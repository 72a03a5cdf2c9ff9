"""A member's removal against their tokens' revoke and issue, at the same time: no deadlock, and
no token outlives the membership it acts through."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.db import connection

from domain.accounts import members, tokens_service
from domain.accounts.actor import Actor
from domain.accounts.models import ApiToken, Membership, Role, TokenScope, User, Workspace
from domain.accounts.services import api_token_create, membership_add
from domain.common.errors import Forbidden
from tests.locks import wait_until_a_session_waits_for_a_lock

pytestmark = pytest.mark.django_db(transaction=True)


def _race(first: Callable[[], Any], second: Callable[[], Any], pause: tuple[Any, str]) -> list[str]:
    """Run `first` until it calls `pause` (an object and the name of one of its callables), then
    `second`; once `second` waits for a lock (or ends), let `first` go on. How each ended."""
    paused, go_on = threading.Event(), threading.Event()
    owner, name = pause
    original = getattr(owner, name)
    outcomes: dict[int, str] = {}
    first_thread: list[threading.Thread] = []

    def pausing(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is first_thread[0] and not paused.is_set():
            paused.set()
            go_on.wait(timeout=20)
        return original(*args, **kwargs)

    def run(which: int, change: Callable[[], Any]) -> None:
        try:
            change()
            outcomes[which] = "done"
        except Exception as error:
            outcomes[which] = getattr(error, "code", None) or type(error).__name__
        finally:
            connection.close()

    with mock.patch.object(owner, name, pausing):
        threads = [threading.Thread(target=run, args=pair) for pair in enumerate((first, second))]
        first_thread.append(threads[0])
        threads[0].start()
        assert paused.wait(timeout=20)
        threads[1].start()
        try:
            wait_until_a_session_waits_for_a_lock("the second change")
        except AssertionError:
            pass  # it did not wait: it ended (or failed) on its own
        finally:
            go_on.set()
            for thread in threads:
                thread.join(timeout=30)
    return [outcomes.get(0, "unfinished"), outcomes.get(1, "unfinished")]


def test_revoking_a_members_token_while_they_are_removed_does_not_deadlock(
    workspace: Workspace, owner: User, member: User
) -> None:
    """The revoke locks the token, then records its event (the workspace's counter); the
    removal recorded member.removed (the counter) before locking the member's tokens."""
    token, _ = api_token_create(
        workspace=workspace, user=member, name="ci", scopes=[TokenScope.READ], expires_at=None
    )
    membership = Membership.objects.get(workspace=workspace, user=member)

    outcomes = _race(
        lambda: tokens_service.token_revoke(token=token, actor=Actor(user=member)),
        lambda: members.member_remove(membership=membership, actor=Actor(user=owner)),
        pause=(tokens_service.events, "record"),  # the revoke holds the token's lock
    )

    assert outcomes == ["done", "done"]
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_a_token_issued_while_its_user_is_removed_does_not_outlive_the_membership(
    workspace: Workspace, owner: User, member: User
) -> None:
    """The removal's revoke had run, and the token committed after it: not revoked, and alive
    again once the user was added back."""
    membership = Membership.objects.get(workspace=workspace, user=member)
    as_member = Actor(user=member)
    as_member.permissions  # noqa: B018 (loaded before the removal, as a request's would be)

    outcomes = _race(
        lambda: members.member_remove(membership=membership, actor=Actor(user=owner)),
        lambda: tokens_service.token_issue(
            workspace=workspace,
            name="late",
            scopes=[TokenScope.READ],
            expires_at=None,
            actor=as_member,
        ),
        # The removal has deleted the membership and revoked the tokens it saw: not committed.
        pause=(members.publish, "credentials_changed_after_commit"),
    )

    assert outcomes == ["done", Forbidden.code]
    membership_add(workspace=workspace, user=member, role=Role.EDITOR)
    assert not ApiToken.objects.filter(user=member, revoked_at__isnull=True).exists()
