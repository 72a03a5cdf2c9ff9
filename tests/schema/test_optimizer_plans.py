"""Kept optimizer plans (schema/optimizer_plans.py): the same answers as planning every time,
planned once per document, caller and variables under the field, and never shared between
callers or between variable values that change the plan."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from domain.accounts.models import User, Workspace
from domain.common.ids import global_id
from schema import optimizer_plans
from tests import factories
from tests.conftest import GQL
from tests.schema.test_compiled_execution import DOCUMENTS, dataset  # noqa: F401 (a fixture)
from tests.support.cache import clear_cache

ASSET = "query($id: ID!) { asset(id: $id) { title renditions { preset } } }"
PAGES = """query($w: ID!) { collections(workspaceId: $w, first: 10) { edges { node { id
  assets(first: 10) { edges { node { title renditions { preset width } } } } } } } }"""
PAGE = """query($w: ID!, $n: Int!) { collections(workspaceId: $w, first: 5) { edges { node {
  assets(first: $n) { edges { node { title } } } } } } }"""


@pytest.fixture(autouse=True)
def _fresh(settings: Any) -> None:
    settings.DEPOT_READ_CACHE_SECONDS = 0
    clear_cache()
    optimizer_plans.forget_plans()


@pytest.fixture
def plans_made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The root fields planned (not taken from the kept plans), in order."""
    made: list[str] = []
    original = optimizer_plans._plan

    def counted(qs: Any, info: Any, config: Any) -> Any:
        made.append(info.field_name)
        return original(qs, info, config)

    monkeypatch.setattr(optimizer_plans, "_plan", counted)
    return made


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_kept_plans_answer_as_fresh_ones(
    gql: GQL,
    token: str,
    dataset: dict[str, Any],  # noqa: F811 (the fixture)
    name: str,
    plans_made: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    document = DOCUMENTS[name]
    used = {k: v for k, v in dataset.items() if f"${k}" in document}
    first = gql(document, used, token)
    planned = len(plans_made)
    again = gql(document, used, token)
    assert len(plans_made) == planned  # nothing planned the second time
    with monkeypatch.context() as m:
        m.setattr(optimizer_plans, "_plan_key", lambda info: None)  # plan every time
        fresh = gql(document, used, token)
    assert "errors" not in first, first
    assert repr(first) == repr(again) == repr(fresh)


@pytest.mark.django_db
def test_one_plan_serves_every_id_of_a_single_object_field(
    gql: GQL, token: str, workspace: Workspace, plans_made: list[str]
) -> None:
    collection = factories.collection(workspace)
    titles = []
    for title in ("one", "two", "three"):
        asset = factories.asset(collection, title=title)
        factories.rendition(asset)
        body = gql(ASSET, {"id": global_id("Asset", asset.pk)}, token)
        titles.append(body["data"]["asset"]["title"])
    assert titles == ["one", "two", "three"]
    assert plans_made == ["asset"]


@pytest.mark.django_db
def test_variables_under_the_field_get_their_own_plan(
    gql: GQL, token: str, workspace: Workspace, plans_made: list[str]
) -> None:
    collection = factories.collection(workspace)
    for n in range(3):
        factories.asset(collection, title=f"a{n}")
    w = global_id("Workspace", workspace.pk)

    def page(n: int) -> int:
        body = gql(PAGE, {"w": w, "n": n}, token)
        return len(body["data"]["collections"]["edges"][0]["node"]["assets"]["edges"])

    assert [page(1), page(2), page(1), page(3)] == [1, 2, 1, 3]
    assert plans_made == ["collections"] * 3


@pytest.mark.django_db
def test_callers_never_share_a_plan(
    gql: GQL,
    workspace: Workspace,
    other_workspace: Workspace,
    stranger: User,
    make_token: Callable[..., str],
    plans_made: list[str],
) -> None:
    """Members are loaded through a prefetch that UserType.get_queryset filters for the
    caller: a plan kept for one caller would show another caller's view."""
    mine = make_token("read")
    theirs = make_token("read", user=stranger, in_workspace=other_workspace)
    query = "{ workspaces { edges { node { slug memberships { user { username } } } } } }"

    def seen(token: str) -> list[Any]:
        edges = gql(query, token=token)["data"]["workspaces"]["edges"]
        return [(e["node"]["slug"], e["node"]["memberships"]) for e in edges]

    assert seen(mine) == [("acme", [{"user": {"username": "owner"}}])]
    assert seen(theirs) == [("other", [{"user": {"username": "stranger"}}])]
    assert seen(mine) == [("acme", [{"user": {"username": "owner"}}])]
    assert plans_made == ["workspaces", "workspaces"]


def _prefetch_querysets(lookups: Any) -> set[int]:
    """The ids of every Prefetch queryset under these lookups, nested ones included."""
    found: set[int] = set()
    for lookup in lookups:
        queryset = getattr(lookup, "queryset", None)
        if queryset is not None:
            found.add(id(queryset))
            found |= _prefetch_querysets(queryset._prefetch_related_lookups)
    return found


@pytest.mark.django_db
def test_each_request_applies_its_own_copy_of_a_kept_plan(
    gql: GQL, token: str, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Applying a plan changes its Prefetch querysets in place and Django hints and runs them,
    so requests in flight at once must never share one. Shared, four requests at once lost
    renditions (bench/http/harness/inproc.py -c 4 --check: 38 of 40 answers wrong)."""
    collection = factories.collection(workspace)
    factories.rendition(factories.asset(collection))
    optimized: list[Any] = []
    original = optimizer_plans.DepotOptimizer.optimize

    def spy(self: Any, qs: Any, info: Any, *, store: Any = None) -> Any:
        result = original(self, qs, info, store=store)
        optimized.append(result)
        return result

    monkeypatch.setattr(optimizer_plans.DepotOptimizer, "optimize", spy)
    variables = {"w": global_id("Workspace", workspace.pk)}
    first, second = (gql(PAGES, variables, token) for _ in range(2))
    assert first == second
    assert first["data"]["collections"]["edges"][0]["node"]["assets"]["edges"][0]["node"][
        "renditions"
    ] == [{"preset": "thumb-256", "width": 256}]
    kept = set().union(
        *(_prefetch_querysets(plan.prefetch_related) for _, plan in optimizer_plans._plans.values())
    )
    # (the connection's count asks the optimizer too, for a QuerySet with nothing to prefetch)
    used = [_prefetch_querysets(qs._prefetch_related_lookups) for qs in optimized]
    used = [querysets for querysets in used if querysets]
    assert len(kept) == 2  # the assets' page and, under it, their renditions
    assert [len(querysets) for querysets in used] == [2, 2]
    assert not kept & used[0]
    assert not kept & used[1]
    assert not used[0] & used[1]
