"""Shared fixtures: people, workspaces, tokens, and a GraphQL client over Django's test client."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from domain.accounts.models import Role, TokenScope, User, Workspace
from domain.accounts.services import api_token_create, membership_add, workspace_create
from tests import stray_connections
from tests.support.local_storage import use_local_storage


@pytest.fixture(scope="session", autouse=True)
def _report_stray_connections(django_db_setup: None, django_db_blocker: Any) -> Any:
    """Before the test database is dropped, name any thread that still holds a connection to
    it (tests/stray_connections.py)."""
    stray_connections.start()
    yield
    with django_db_blocker.unblock():
        stray_connections.warn()


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    counter = {"n": 0}

    def make(username: str | None = None) -> User:
        counter["n"] += 1
        return User.objects.create_user(
            username=username or f"user{counter['n']}", password="pw-for-tests"
        )

    return make


@pytest.fixture
def owner(make_user: Callable[..., User]) -> User:
    return make_user("owner")


@pytest.fixture
def workspace(owner: User) -> Workspace:
    return workspace_create(name="Acme", slug="acme", owner=owner)


@pytest.fixture
def stranger(make_user: Callable[..., User]) -> User:
    return make_user("stranger")


@pytest.fixture
def other_workspace(stranger: User) -> Workspace:
    """A workspace the owner is not in: its objects must look like missing ones."""
    return workspace_create(name="Other", slug="other", owner=stranger)


@pytest.fixture
def viewer_user(make_user: Callable[..., User], workspace: Workspace) -> User:
    user = make_user("viewer")
    membership_add(workspace=workspace, user=user, role=Role.VIEWER)
    return user


@pytest.fixture
def member(make_user: Callable[..., User], workspace: Workspace) -> User:
    """An editor of the workspace, not its owner."""
    user = make_user("member")
    membership_add(workspace=workspace, user=user, role=Role.EDITOR)
    return user


@pytest.fixture
def make_token(owner: User, workspace: Workspace) -> Callable[..., str]:
    def make(
        *scopes: str,
        user: User | None = None,
        in_workspace: Workspace | None = None,
        expires_at: datetime | None = None,
    ) -> str:
        _, secret = api_token_create(
            workspace=in_workspace or workspace,
            user=user or owner,
            name="test",
            scopes=[TokenScope(s) for s in (scopes or ("read", "write"))],
            expires_at=expires_at,
        )
        return secret

    return make


@pytest.fixture
def token(make_token: Callable[..., str]) -> str:
    return make_token("read", "write")


class GQL:
    """GraphQL over Django's test client (the real view, middleware and CSRF checks)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        token: str | None = None,
        **extra: Any,
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.post(
            "/graphql/",
            data=json.dumps({"query": query, "variables": variables or {}}),
            content_type="application/json",
            headers=headers,
            **extra,
        )

    def __call__(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        response = self.post(query, variables, token)
        assert response.status_code == 200, response.content
        return dict(response.json())


@pytest.fixture
def gql(client: Client) -> GQL:
    return GQL(client)


@pytest.fixture
def media_root(settings: Any, tmp_path: Path) -> Path:
    """Embedded mode's storage: objects as files under this directory, no S3."""
    return use_local_storage(settings, tmp_path / "media")
