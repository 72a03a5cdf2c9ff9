"""The read cache: hits for repeated asset queries, and never a stale answer after a change."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from domain.accounts.actor import Actor
from domain.accounts.models import User, Workspace
from domain.assets.editing import AssetChanges, asset_update
from domain.common.ids import global_id
from tests import factories
from tests.conftest import GQL
from tests.support.cache import clear_cache

QUERY = "query($id: ID!) { asset(id: $id) { title renditions { preset } } }"


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    clear_cache()


@pytest.mark.django_db
def test_a_repeated_query_is_served_from_the_cache_until_an_event_moves_the_sequence(
    gql: GQL, token: str, workspace: Workspace, owner: User
) -> None:
    asset = factories.asset(factories.collection(workspace), title="First")
    variables = {"id": global_id("Asset", asset.pk)}
    first = gql.post(QUERY, variables, token)
    again = gql.post(QUERY, variables, token)
    assert "X-Depot-Cache" not in first
    assert again["X-Depot-Cache"] == "hit"
    assert again.content == first.content

    asset_update(asset=asset, changes=AssetChanges(title="Second"), actor=Actor(user=owner))
    after = gql.post(QUERY, variables, token)
    assert "X-Depot-Cache" not in after
    assert after.json()["data"]["asset"]["title"] == "Second"


@pytest.mark.django_db
def test_callers_with_other_permissions_never_share_an_entry(
    gql: GQL,
    make_token: Callable[..., str],
    workspace: Workspace,
    stranger: User,
    other_workspace: Workspace,
) -> None:
    asset = factories.asset(factories.collection(workspace), title="Mine")
    variables = {"id": global_id("Asset", asset.pk)}
    assert gql(QUERY, variables, make_token("read"))["data"]["asset"]["title"] == "Mine"
    theirs = make_token("read", user=stranger, in_workspace=other_workspace)
    response = gql.post(QUERY, variables, theirs)
    assert response.json()["data"]["asset"] is None
    assert "X-Depot-Cache" not in response


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        "{ jobs(first: 5) { totalCount } }",
        "{ assets(first: 5) { totalCount } viewer { username } }",
        'mutation { jobCancel(id: "Sm9iOjE=") { errors { code } } }',
    ],
)
def test_jobs_viewer_and_mutations_always_run(gql: GQL, token: str, query: str) -> None:
    gql.post(query, {}, token)
    assert "X-Depot-Cache" not in gql.post(query, {}, token)
