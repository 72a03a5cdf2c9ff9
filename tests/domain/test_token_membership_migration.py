"""accounts.0003 binds tokens to their membership row without stopping the old release: its
statements lock the table for a moment only, a token the old release issues meanwhile (no
link) still works, a membership it deletes (not knowing of the link) fails nothing and kills
its tokens, and the existing tokens are bound by the rule the bearer lookup applies to
unbound ones (the user's membership older than the token)."""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from domain.accounts.models import ApiToken, Membership, Role, User, Workspace
from domain.accounts.services import membership_add
from domain.accounts.tokens import hash_secret, new_secret
from tests.conftest import GQL

VIEWER = "{ viewer { username } }"


def _works(gql: GQL, secret: str) -> bool:
    response = gql.post(VIEWER, token=secret)
    if response.status_code == 401:
        assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_TOKEN"
        return False
    assert response.json()["data"]["viewer"] is not None, response.content
    return True


@pytest.mark.django_db
def test_its_statements_lock_the_table_for_a_moment_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite (embedded mode) has one process: it adds the field plainly")
    out = io.StringIO()
    call_command("sqlmigrate", "accounts", "0003", stdout=out)
    sql = out.getvalue()
    assert "BEGIN" not in sql, sql  # each statement commits on its own
    statements = [line for line in sql.splitlines() if line and not line.startswith("--")]
    # A catalogue change (nothing to check or write under its lock), then an index build
    # that lets writes go on.
    assert statements == [
        'ALTER TABLE "accounts_apitoken" ADD COLUMN "membership_id" bigint NULL;',
        'CREATE INDEX CONCURRENTLY "accounts_apitoken_membership_id_c1bb9807" '
        'ON "accounts_apitoken" ("membership_id");',
    ]


@pytest.mark.django_db
def test_a_token_the_old_release_issues_during_the_deploy_works(
    gql: GQL, member: User, workspace: Workspace
) -> None:
    """It has no link: it acts through its user's membership older than itself, so it works,
    and a membership made again after it (outside the services) does not revive it."""
    state = MigrationExecutor(connection).loader.project_state(
        ("accounts", "0002_workspace_media_settings")
    )
    OldApiToken = state.apps.get_model("accounts", "ApiToken")
    assert "membership" not in {f.name for f in OldApiToken._meta.fields}
    secret = new_secret()
    OldApiToken.objects.create(
        workspace_id=workspace.pk,
        user_id=member.pk,
        name="issued by the old release",
        prefix=secret[:12],
        secret_hash=hash_secret(secret),
        scopes=["read"],
    )
    assert ApiToken.objects.get(prefix=secret[:12]).membership_id is None
    assert _works(gql, secret)

    Membership.objects.filter(user=member).delete()  # nothing is linked to it: nothing revoked
    assert ApiToken.objects.get(prefix=secret[:12]).revoked_at is None
    membership_add(workspace=workspace, user=member, role=Role.EDITOR)
    assert not _works(gql, secret)


@pytest.mark.django_db
def test_a_membership_the_old_release_deletes_fails_nothing_and_kills_its_tokens(
    gql: GQL, owner: User, member: User, workspace: Workspace, make_token: Callable[..., str]
) -> None:
    """That release deletes the row without knowing of the link (an admin's delete, or its
    memberRemove before it revokes): no constraint fails it, and the token's link names no
    row any more."""
    secret = make_token("read", user=member)
    state = MigrationExecutor(connection).loader.project_state(
        ("accounts", "0002_workspace_media_settings")
    )
    OldMembership = state.apps.get_model("accounts", "Membership")
    OldMembership.objects.filter(user_id=member.pk, workspace_id=workspace.pk).delete()
    assert ApiToken.objects.get(prefix=secret[:12]).revoked_at is None  # its ORM knew nothing
    assert not _works(gql, secret)
    membership_add(workspace=workspace, user=member, role=Role.EDITOR)
    assert not _works(gql, secret)
    assert _works(gql, make_token("read", user=member))


@pytest.mark.django_db
def test_existing_tokens_are_bound_to_the_membership_they_were_issued_under(
    gql: GQL, member: User, workspace: Workspace, make_token: Callable[..., str]
) -> None:
    """Each answers as before, but through its own row from then on; one issued before its
    membership was made again (whom the release before the last let in again) stays out."""
    migration = importlib.import_module("domain.accounts.migrations.0003_apitoken_membership")
    before = make_token("read", user=member)
    # Before the migration there were no links, and a membership deleted outside the
    # services revoked nothing.
    ApiToken.objects.update(membership=None)
    Membership.objects.filter(user=member).delete()
    membership_add(workspace=workspace, user=member, role=Role.EDITOR)
    after = make_token("read", user=member)
    ApiToken.objects.update(membership=None)
    assert ApiToken.objects.filter(revoked_at__isnull=True).count() == 2

    apps = (
        MigrationExecutor(connection)
        .loader.project_state(("accounts", "0003_apitoken_membership"))
        .apps
    )
    migration.bind_tokens_to_their_memberships(apps, SimpleNamespace(connection=connection))

    memberships = dict(Membership.objects.values_list("user_id", "pk"))
    bound = dict(ApiToken.objects.values_list("prefix", "membership_id"))
    assert bound[after[:12]] == memberships[member.pk]
    assert bound[before[:12]] is None
    assert _works(gql, after)
    assert not _works(gql, before)
