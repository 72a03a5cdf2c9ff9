"""FLOOR: a plain sync Django view that answers the two benchmark queries with the JSON Depot
returns, from a careful hand-written ORM query (only(), a sliced Prefetch, dicts, JsonResponse).

It accepts the same POST body as Depot (a GraphQL request) and dispatches on operationName, so
one wrk body file serves every contender. It does no authentication (the anchors' floor does
none either): the workspace comes from the request's variables.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from domain.assets.models import Asset, Collection, Rendition

ASSET_FIELDS = ("id", "collection_id", "title", "size", "state")
RENDITION_FIELDS = ("id", "asset_id", "preset", "width", "height")


def _gid(type_name: str, pk: int) -> str:
    # strawberry.relay's encoding: base64 of "Type:pk".
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def _pk(global_id: str, type_name: str) -> int:
    kind, _, pk = base64.b64decode(global_id).decode().partition(":")
    return int(pk) if kind == type_name and pk.isdigit() else 0


def _renditions() -> QuerySet[Rendition]:
    return Rendition.objects.only(*RENDITION_FIELDS).order_by("preset")


def _asset(asset: Asset) -> dict[str, Any]:
    return {
        "id": _gid("Asset", asset.pk),
        "title": asset.title,
        "size": asset.size,
        "state": asset.state,
        "renditions": [
            {"preset": r.preset, "width": r.width, "height": r.height}
            for r in asset.renditions.all()
        ],
    }


def dashboard_data(workspace_pk: int, n_collections: int, n_assets: int) -> dict[str, Any]:
    # A sliced Prefetch (Django >= 4.2) becomes a ROW_NUMBER() window: 3 statements in all.
    assets = (
        Asset.objects.only(*ASSET_FIELDS)
        .order_by("-created_at", "-pk")
        .prefetch_related(Prefetch("renditions", queryset=_renditions()))
    )[:n_assets]
    collections = (
        Collection.objects.only("id", "name")
        .filter(workspace_id=workspace_pk)
        .order_by("name", "pk")
        .prefetch_related(Prefetch("assets", queryset=assets, to_attr="top_assets"))
    )[:n_collections]
    return {
        "collections": {
            "edges": [
                {
                    "node": {
                        "id": _gid("Collection", c.pk),
                        "name": c.name,
                        "assets": {"edges": [{"node": _asset(a)} for a in c.top_assets]},
                    }
                }
                for c in collections
            ]
        }
    }


def asset_data(asset_pk: int) -> dict[str, Any]:
    asset = (
        Asset.objects.only(*ASSET_FIELDS)
        .prefetch_related(Prefetch("renditions", queryset=_renditions()))
        .filter(pk=asset_pk)
        .first()
    )
    return {"asset": _asset(asset) if asset is not None else None}


@csrf_exempt
def floor_view(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body or b"{}")
    op, variables = body.get("operationName"), body.get("variables") or {}
    if op == "Dashboard":
        data = dashboard_data(
            _pk(variables["workspaceId"], "Workspace"),
            variables["collections"],
            variables["assets"],
        )
    elif op == "AssetById":
        data = asset_data(_pk(variables["id"], "Asset"))
    else:
        return JsonResponse({"errors": [{"message": f"unknown operation {op!r}"}]}, status=400)
    return JsonResponse({"data": data}, json_dumps_params={"separators": (",", ":")})
