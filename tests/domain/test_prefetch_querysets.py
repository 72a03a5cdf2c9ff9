"""PrefetchFriendlyQuerySet (domain/common/querysets.py): the QuerySet holding one object's
prefetched rows shares the prefetch's Query until something reads it, and then behaves exactly
like Django's own: the same rows, the relation's filter applied, the prefetch untouched."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.models import Prefetch, QuerySet
from django.test.utils import CaptureQueriesContext
from strawberry_django.optimizer import is_optimized_by_prefetching, mark_optimized_by_prefetching

from domain.accounts.models import Workspace
from domain.assets.models import Asset, Rendition
from domain.common.querysets import PrefetchFriendlyQuerySet
from tests import factories


@pytest.fixture
def assets(workspace: Workspace) -> list[Asset]:
    collection = factories.collection(workspace)
    made = []
    for _ in range(3):
        asset = factories.asset(collection)
        factories.rendition(asset, preset="thumb-256")
        factories.rendition(asset, preset="preview-1024")
        made.append(asset)
    return made


def _held(asset: Asset) -> Any:
    """The QuerySet a prefetch keeps an object's rows in."""
    return asset.__dict__["_prefetched_objects_cache"]["renditions"]


def _prefetched(assets: list[Asset], renditions: QuerySet[Rendition]) -> list[Asset]:
    ids = [a.pk for a in assets]
    lookup = Prefetch("renditions", queryset=renditions)
    return list(Asset.objects.filter(pk__in=ids).order_by("pk").prefetch_related(lookup))


@pytest.mark.django_db
def test_the_models_hand_out_prefetch_friendly_querysets_for_prefetches() -> None:
    assert isinstance(Rendition.objects.all(), PrefetchFriendlyQuerySet)
    assert isinstance(Rendition._base_manager.all(), PrefetchFriendlyQuerySet)
    assert isinstance(Asset(pk=1).renditions.all(), PrefetchFriendlyQuerySet)


@pytest.mark.django_db
def test_reading_prefetched_rows_shares_the_query_and_runs_no_sql(assets: list[Asset]) -> None:
    renditions: Any = Rendition.objects.only("id", "asset_id", "preset").order_by("preset")
    loaded = _prefetched(assets, renditions)
    with CaptureQueriesContext(connection) as queries:
        rows = {a.pk: [r.preset for r in a.renditions.all()] for a in loaded}
    assert len(queries) == 0
    assert rows == {a.pk: ["preview-1024", "thumb-256"] for a in assets}
    held: Any = _held(loaded[0])
    assert held._query_shared
    assert held._query is renditions._query


@pytest.mark.django_db
def test_filtering_prefetched_rows_queries_that_objects_rows_only(assets: list[Asset]) -> None:
    renditions = Rendition.objects.order_by("preset")
    before = str(renditions.query)
    loaded = _prefetched(assets, renditions)
    for asset in loaded:
        assert [r.asset_id for r in asset.renditions.filter(preset="thumb-256")] == [asset.pk]
        assert asset.renditions.all().count() == 2
        held = asset.renditions.all()
        assert f'"asset_id" = {asset.pk}' in str(held.query)
    # Each copy took its own Query when read: the prefetch's is as it was.
    assert str(renditions.query) == before
    assert Rendition.objects.filter(asset__in=assets).count() == 6


@pytest.mark.django_db
def test_what_other_libraries_attach_is_copied_not_shared(assets: list[Asset]) -> None:
    renditions = Rendition.objects.all()
    mark_optimized_by_prefetching(renditions)
    loaded = _prefetched(assets, renditions)
    first: Any = _held(loaded[0])
    second: Any = _held(loaded[1])
    assert is_optimized_by_prefetching(first)
    assert is_optimized_by_prefetching(second)
    assert first._strawberry_django_config is not second._strawberry_django_config
    first._strawberry_django_config.optimized_by_prefetching = False
    assert is_optimized_by_prefetching(second)
    assert is_optimized_by_prefetching(renditions)


@pytest.mark.django_db
def test_every_other_clone_is_djangos_own(assets: list[Asset]) -> None:
    base = Rendition.objects.filter(asset=assets[0])
    narrowed: Any = base.filter(preset="thumb-256")
    assert not narrowed._query_shared
    assert narrowed._query is not base.query
    assert narrowed.count() == 1
    assert base.count() == 2
