"""`manage.py seed_demo` (what `make run` starts with): the login and token it prints work,
whatever an earlier run or a person left in the database."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from domain.accounts.models import User
from domain.accounts.selectors import actor_from_bearer
from domain.accounts.services import workspace_create


def _seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def _token(output: str) -> str:
    found = re.search(r"API token: (\S+)", output)
    assert found is not None, output
    return found.group(1)


@pytest.mark.django_db
def test_the_printed_login_and_token_work_after_every_run(make_user: Callable[..., User]) -> None:
    first = _seed()
    assert "login:     demo / demo" in first
    demo = User.objects.get(username="demo")
    demo.set_password("changed by someone")
    demo.is_active = False
    demo.save()
    second = _seed()
    assert authenticate(username="demo", password="demo") is not None
    actor = actor_from_bearer(secret=_token(second))
    assert actor.user is not None
    assert actor.user.username == "demo"
    assert len(actor.permissions) == 1


@pytest.mark.django_db
def test_a_demo_slug_taken_by_someone_else_still_gives_a_working_demo(
    make_user: Callable[..., User],
) -> None:
    workspace_create(name="Theirs", slug="demo", owner=make_user("someone"))
    actor = actor_from_bearer(secret=_token(_seed()))
    assert actor.user is not None
    assert actor.user.username == "demo"
    assert len(actor.permissions) == 1
