"""A token's lookup is kept in process while the credentials epoch stands
(domain/accounts/credentials.py), and every change to tokens, members or users still takes
effect on the next request, in this process and, through the epoch, in every other."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from domain.accounts import credentials
from domain.accounts.models import ApiToken, Membership, Role, User, Workspace
from domain.common.ids import global_id
from tests.conftest import GQL

VIEWER = "{ viewer { memberships { role } } }"
REVOKE = """mutation($id: ID!) { apiTokenRevoke(id: $id) { errors { code } } }"""


@contextmanager
def _token_statements() -> Iterator[list[str]]:
    """The bearer statements run meanwhile."""
    found: list[str] = []
    with CaptureQueriesContext(connection) as queries:
        yield found
    found.extend(q["sql"] for q in queries if '"accounts_apitoken" t' in q["sql"])


def _as_if_committed_before() -> None:
    """The test's own transaction never commits: take out the epoch move its fixtures' changes
    scheduled, as their commit would have run it, so a later change schedules its own."""
    connection.run_on_commit[:] = [
        entry for entry in connection.run_on_commit if entry[1] is not credentials._move_epoch
    ]


def _role(gql: GQL, token: str) -> Any:
    response = gql.post(VIEWER, token=token)
    if response.status_code != 200:
        return response.status_code
    return response.json()["data"]["viewer"]["memberships"][0]["role"]


@pytest.mark.django_db
def test_a_token_is_read_once_while_nothing_changes(gql: GQL, token: str) -> None:
    assert _role(gql, token) == "OWNER"
    with _token_statements() as statements:
        for _ in range(3):
            assert _role(gql, token) == "OWNER"
    assert statements == []


@pytest.mark.django_db
def test_revoking_a_token_stops_it_on_the_next_request(
    gql: GQL, token: str, make_token: Callable[..., str]
) -> None:
    other = make_token("read", "write", "admin")
    assert _role(gql, token) == "OWNER"
    token_id = ApiToken.objects.get(prefix=token[:12]).pk
    revoked = gql(REVOKE, {"id": global_id("ApiToken", token_id)}, other)
    assert revoked["data"]["apiTokenRevoke"]["errors"] == []
    assert _role(gql, token) == 401
    assert _role(gql, other) == "OWNER"


@pytest.mark.django_db
def test_a_role_change_in_another_process_reaches_this_one_through_the_epoch(
    gql: GQL,
    token: str,
    owner: User,
    workspace: Workspace,
    django_capture_on_commit_callbacks: Any,
) -> None:
    assert _role(gql, token) == "OWNER"
    # Another process changes the role: its commit moves the epoch, and this process, which
    # did not see the change happen, still holds its record.
    held = dict(credentials._kept)
    _as_if_committed_before()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        membership = Membership.objects.get(user=owner, workspace=workspace)
        membership.role = Role.VIEWER
        membership.save(update_fields=["role"])
    assert len(callbacks) == 1
    credentials._kept.update(held)
    with _token_statements() as statements:
        assert _role(gql, token) == "VIEWER"
    assert len(statements) == 1


@pytest.mark.django_db
def test_removing_the_member_or_deactivating_the_user_stops_the_token(
    gql: GQL, token: str, owner: User, workspace: Workspace, make_token: Callable[..., str]
) -> None:
    assert _role(gql, token) == "OWNER"
    owner.is_active = False
    owner.save()
    assert _role(gql, token) == 401
    owner.is_active = True
    owner.save()
    assert _role(gql, token) == "OWNER"
    Membership.objects.get(user=owner, workspace=workspace).delete()
    assert _role(gql, token) == 401  # as a revoked token: it acted through the membership


@pytest.mark.django_db
def test_bookkeeping_saves_keep_the_record(gql: GQL, token: str, owner: User) -> None:
    assert _role(gql, token) == "OWNER"
    owner.last_login = timezone.now()
    owner.save(update_fields=["last_login"])
    with _token_statements() as statements:
        assert _role(gql, token) == "OWNER"
    assert statements == []


@pytest.mark.django_db
def test_expiry_is_checked_on_every_use(
    gql: GQL, make_token: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    expiring = make_token("read", expires_at=timezone.now() + timedelta(minutes=5))
    assert _role(gql, expiring) == "OWNER"
    later = timezone.now() + timedelta(minutes=6)
    monkeypatch.setattr("domain.accounts.selectors.timezone.now", lambda: later)
    with _token_statements() as statements:
        assert _role(gql, expiring) == 401
    assert statements == []  # the kept record's expiry, no statement


@pytest.mark.django_db
def test_a_change_no_receiver_sees_is_bounded_by_the_setting(
    gql: GQL, token: str, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    assert _role(gql, token) == "OWNER"
    # A bulk update sends no signal: the record stands until it is DEPOT_TOKEN_CACHE_SECONDS old.
    ApiToken.objects.filter(prefix=token[:12]).update(revoked_at=timezone.now())
    assert _role(gql, token) == "OWNER"
    now = credentials.time.monotonic()
    later = now + settings.DEPOT_TOKEN_CACHE_SECONDS + 1
    monkeypatch.setattr(credentials.time, "monotonic", lambda: later)
    assert _role(gql, token) == 401


@pytest.mark.django_db
def test_credentials_changed_is_the_way_to_announce_such_a_change(gql: GQL, token: str) -> None:
    assert _role(gql, token) == "OWNER"
    ApiToken.objects.filter(prefix=token[:12]).update(revoked_at=timezone.now())
    credentials.credentials_changed()
    assert _role(gql, token) == 401


@pytest.mark.django_db
def test_without_the_cache_store_every_request_reads_the_token(
    gql: GQL, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any) -> Any:
        raise ConnectionError("redis is down")

    monkeypatch.setattr("project.ratelimit._count_pipelined", down)
    with _token_statements() as statements:
        assert _role(gql, token) == "OWNER"
        assert _role(gql, token) == "OWNER"
    assert len(statements) == 2


@pytest.mark.django_db
def test_the_setting_at_zero_reads_the_token_every_time(
    gql: GQL, token: str, settings: Any
) -> None:
    settings.DEPOT_TOKEN_CACHE_SECONDS = 0
    with _token_statements() as statements:
        assert _role(gql, token) == "OWNER"
        assert _role(gql, token) == "OWNER"
    assert len(statements) == 2


@pytest.mark.django_db
def test_a_transaction_moves_the_epoch_once_however_many_rows_it_changes(
    owner: User,
    workspace: Workspace,
    make_token: Callable[..., str],
    make_user: Callable[..., User],
    django_capture_on_commit_callbacks: Any,
) -> None:
    for _ in range(5):
        make_token("read")
    for name in ("ann", "bob"):
        Membership.objects.create(user=make_user(name), workspace=workspace, role=Role.VIEWER)
    _as_if_committed_before()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        workspace.delete()  # cascades to its tokens and memberships, a receiver call per row
    moves = [c for c in callbacks if c is credentials._move_epoch]
    assert len(moves) == 1
    # A savepoint rolled back takes its callbacks with it: the next change schedules again.
    _as_if_committed_before()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                owner.first_name = "Changed"
                owner.save()
                raise RuntimeError("undo")
        except RuntimeError:
            pass
        owner.first_name = "Again"
        owner.save()
    assert [c for c in callbacks if c is credentials._move_epoch] == [credentials._move_epoch]
