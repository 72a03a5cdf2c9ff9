"""A workspace always keeps an owner, also when owners change each other at the same time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.db import connection

from domain.accounts import members
from domain.accounts.actor import Actor
from domain.accounts.errors import LastOwner
from domain.accounts.models import Membership, Role, User, Workspace
from domain.accounts.services import membership_add
from tests.locks import wait_until_a_session_waits_for_a_lock


def _race(first: Callable[[], Any], second: Callable[[], Any]) -> list[str]:
    """Run `first` until it has counted the other owners, then `second`; once `second` waits
    for a lock, let `first` go on. Returns how each ended, in the order they ended."""
    counted, go_on = threading.Event(), threading.Event()
    count_other_owners = members._other_owners
    outcomes: dict[int, str] = {}

    def counting_then_waiting(membership: Membership) -> bool:
        others = count_other_owners(membership)
        if not counted.is_set():
            counted.set()
            go_on.wait(timeout=20)
        return others

    def run(which: int, change: Callable[[], Any]) -> None:
        try:
            change()
            outcomes[which] = "changed"
        except LastOwner:
            outcomes[which] = "LAST_OWNER"
        finally:
            connection.close()

    with mock.patch.object(members, "_other_owners", counting_then_waiting):
        threads = [threading.Thread(target=run, args=pair) for pair in enumerate((first, second))]
        threads[0].start()
        assert counted.wait(timeout=20)
        threads[1].start()
        try:
            wait_until_a_session_waits_for_a_lock("the second owner change")
        finally:
            go_on.set()
            for thread in threads:
                thread.join(timeout=30)
    return [outcomes.get(0, "unfinished"), outcomes.get(1, "unfinished")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["demote", "remove"])
def test_two_owners_changing_each_other_at_once_leave_one_owner(
    how: str, make_user: Callable[..., User], workspace: Workspace, owner: User
) -> None:
    second = make_user("second")
    membership_add(workspace=workspace, user=second, role=Role.OWNER)
    of_owner = Membership.objects.get(user=owner, workspace=workspace)
    of_second = Membership.objects.get(user=second, workspace=workspace)

    def change(membership: Membership, by: User) -> Callable[[], Any]:
        if how == "demote":
            return lambda: members.member_role_change(
                membership=membership, role=Role.VIEWER, actor=Actor(user=by)
            )
        return lambda: members.member_remove(membership=membership, actor=Actor(user=by))

    outcomes = _race(change(of_second, owner), change(of_owner, second))

    assert outcomes == ["changed", "LAST_OWNER"]
    assert list(
        Membership.objects.filter(workspace=workspace, role=Role.OWNER).values_list(
            "user_id", flat=True
        )
    ) == [owner.pk]
