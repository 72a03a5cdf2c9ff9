from __future__ import annotations

import json

from django.db import connection
from django.db.models import Q, QuerySet

from domain.accounts.actor import Actor
from domain.assets.models import Asset, Collection, Rendition
from domain.common.errors import NotFound


def collection_list_for(*, actor: Actor) -> QuerySet[Collection]:
    return Collection.objects.filter(workspace_id__in=actor.workspace_ids()).order_by("name", "pk")


def collection_get_for(*, actor: Actor, collection_id: int) -> Collection:
    collection = collection_list_for(actor=actor).filter(pk=collection_id).first()
    if collection is None:
        raise NotFound("No such collection.", path=["collectionId"])
    return collection


def asset_list_for(*, actor: Actor) -> QuerySet[Asset]:
    return Asset.objects.filter(workspace_id__in=actor.workspace_ids()).order_by(
        "-created_at", "-pk"
    )


def asset_get_for(*, actor: Actor, asset_id: int) -> Asset:
    asset = asset_list_for(actor=actor).filter(pk=asset_id).first()
    if asset is None:
        raise NotFound("No such asset.", path=["assetId"])
    return asset


def assets_get_for(*, actor: Actor, asset_ids: list[int], path: str = "assetIds") -> list[Asset]:
    """The caller's assets of these ids, in their order (one read, however many); NOT_FOUND
    (at `path`) if any is missing or another workspace's, as for one."""
    found = asset_list_for(actor=actor).in_bulk(asset_ids)
    if len(found) != len(set(asset_ids)):
        raise NotFound("No such asset.", path=[path])
    return [found[pk] for pk in asset_ids]


def rendition_list_for(*, actor: Actor) -> QuerySet[Rendition]:
    return Rendition.objects.filter(asset__workspace_id__in=actor.workspace_ids())


def tag_lookup(tag: str, *, prefix: str = "") -> Q:
    """Assets whose tags include `tag`. Postgres matches the JSON array exactly; SQLite has no
    JSON containment, so there it matches the quoted tag inside the stored array."""
    if connection.vendor == "postgresql":
        return Q(**{f"{prefix}tags__contains": [tag]})
    return Q(**{f"{prefix}tags__icontains": json.dumps(tag)})
