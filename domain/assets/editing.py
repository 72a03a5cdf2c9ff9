"""Changing assets and collections: edits, moves, and bulk edits for integrators."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from domain.accounts.actor import Actor
from domain.accounts.models import Permission
from domain.accounts.selectors import require_permission
from domain.assets.errors import CollectionNameTaken, InvalidAssetInput
from domain.assets.models import Asset, AssetState, Collection
from domain.assets.services import asset_event_payload, lock_collection_for_new_assets
from domain.common.errors import DomainError, InvalidState, NotFound
from domain.common.ids import global_id
from domain.common.text import DESCRIPTION_MAX_LENGTH, column_limit, require_length
from domain.common.validation import validate_fields
from domain.jobs import events

MAX_TAGS = 50
MAX_TAG_LENGTH = 64
MAX_CUSTOM_METADATA_BYTES = 16 * 1024
BULK_LIMIT = 5000
_TITLE_LIMIT = column_limit(Asset, "title")


@dataclass(frozen=True)
class AssetChanges:
    """Fields to change; None leaves a field as it is."""

    title: str | None = None
    tags: list[str] | None = None
    description: str | None = None
    custom_metadata: dict[str, Any] | None = None
    # Keys to set in the custom metadata, a null value removing its key (a JSON merge patch
    # of the top level): integrators change their own keys without reading the others first.
    custom_metadata_merge: dict[str, Any] | None = None


def clean_changes(changes: AssetChanges) -> dict[str, Any]:
    """The validated new values, or InvalidAssetInput with the path of the first bad field."""
    values: dict[str, Any] = {}
    if changes.title is not None:
        title = changes.title.strip()
        if not title:
            raise InvalidAssetInput("A title is required.", path=["title"])
        values["title"] = require_length(title, limit=_TITLE_LIMIT, path=["title"])
    if changes.tags is not None:
        tags = list(dict.fromkeys(tag.strip() for tag in changes.tags if tag.strip()))
        if len(tags) > MAX_TAGS or any(len(tag) > MAX_TAG_LENGTH for tag in tags):
            raise InvalidAssetInput(
                f"At most {MAX_TAGS} tags of at most {MAX_TAG_LENGTH} characters.", path=["tags"]
            )
        values["tags"] = tags
    if changes.description is not None:
        values["description"] = require_length(
            changes.description, limit=DESCRIPTION_MAX_LENGTH, path=["description"]
        )
    if changes.custom_metadata is not None:
        if not isinstance(changes.custom_metadata, dict):
            raise InvalidAssetInput("Custom metadata is a JSON object.", path=["customMetadata"])
        if len(json.dumps(changes.custom_metadata)) > MAX_CUSTOM_METADATA_BYTES:
            raise InvalidAssetInput(
                f"Custom metadata is limited to {MAX_CUSTOM_METADATA_BYTES} bytes of JSON.",
                path=["customMetadata"],
            )
        values["custom_metadata"] = changes.custom_metadata
    if changes.custom_metadata_merge is not None:
        if changes.custom_metadata is not None:
            raise InvalidAssetInput(
                "Give customMetadata or customMetadataMerge, not both.",
                path=["customMetadataMerge"],
            )
        if not isinstance(changes.custom_metadata_merge, dict):
            raise InvalidAssetInput("The merge is a JSON object.", path=["customMetadataMerge"])
        values[_MERGE] = changes.custom_metadata_merge
    return values


_MERGE = "custom_metadata_merge"


def with_merge(values: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """`values` with a custom-metadata merge applied to `current`, as the new custom metadata."""
    if _MERGE not in values:
        return values
    merged = dict(current)
    for key, value in values[_MERGE].items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(json.dumps(merged)) > MAX_CUSTOM_METADATA_BYTES:
        raise InvalidAssetInput(
            f"Custom metadata is limited to {MAX_CUSTOM_METADATA_BYTES} bytes of JSON.",
            path=["customMetadataMerge"],
        )
    return {**{k: v for k, v in values.items() if k != _MERGE}, "custom_metadata": merged}


def _editable(asset: Asset) -> None:
    if asset.state == AssetState.DELETING:
        raise InvalidState("The asset is being deleted.", path=["id"])


@transaction.atomic
def asset_update(*, asset: Asset, changes: AssetChanges, actor: Actor) -> Asset:
    require_permission(actor=actor, workspace_id=asset.workspace_id, needed=Permission.WRITE)
    values = clean_changes(changes)
    asset = Asset.objects.select_for_update().get(pk=asset.pk)
    _editable(asset)
    values = with_merge(values, asset.custom_metadata)
    if values:
        for name, value in values.items():
            setattr(asset, name, value)
        asset.save(update_fields=[*values, "updated_at"])
        events.record(
            asset.workspace_id,
            "asset.updated",
            {**asset_event_payload(asset), "fields": sorted(values)},
        )
    return asset


# Assets one assetMove may name: its rows are locked in one statement, its events recorded in one.
MAX_ASSETS_PER_MOVE = 1000


def require_move_size(count: int) -> None:
    """A move names at most MAX_ASSETS_PER_MOVE assets; checked before they are read."""
    if count > MAX_ASSETS_PER_MOVE:
        raise InvalidAssetInput(
            f"At most {MAX_ASSETS_PER_MOVE} assets per call.", path=["assetIds"]
        )


@transaction.atomic
def asset_move(*, assets: list[Asset], collection: Collection, actor: Actor) -> list[Asset]:
    """Move assets into a collection of the same workspace (an asset named twice moves once)."""
    require_move_size(len(assets))
    require_permission(actor=actor, workspace_id=collection.workspace_id, needed=Permission.WRITE)
    assets = list({asset.pk: asset for asset in assets}.values())
    for asset in assets:
        if asset.workspace_id != collection.workspace_id:
            # Another workspace's asset reads as a missing one.
            raise NotFound("No such asset.", path=["assetIds"])
        require_permission(actor=actor, workspace_id=asset.workspace_id, needed=Permission.WRITE)
    # Locked in id order, as a deletion marks its batch, so the two never lock the same rows in
    # opposite orders; and their state and collection read under the lock: a deletion may have
    # marked one since the caller read it.
    current = {
        row.pk: row
        for row in Asset.objects.select_for_update()
        .filter(pk__in=[asset.pk for asset in assets])
        .only("pk", "state", "collection_id")
        .order_by("pk")
    }
    for asset in assets:
        if asset.pk not in current:
            raise NotFound("No such asset.", path=["assetIds"])
        asset.state = current[asset.pk].state
        asset.collection_id = current[asset.pk].collection_id
        _editable(asset)
    moving = [asset for asset in assets if asset.collection_id != collection.pk]
    if moving:
        lock_collection_for_new_assets(collection.pk)
    # Where each came from, so the collection it leaves hears of it too (assetChanged).
    left = {asset.pk: global_id("Collection", asset.collection_id) for asset in moving}
    Asset.objects.filter(pk__in=[a.pk for a in moving]).update(collection=collection)
    for asset in moving:
        asset.collection = collection
    events.record_many(
        collection.workspace_id,
        "asset.moved",
        [{**asset_event_payload(asset), "fromCollectionId": left[asset.pk]} for asset in moving],
    )
    return assets


@transaction.atomic
def collection_update(
    *, collection: Collection, name: str | None, description: str | None, actor: Actor
) -> Collection:
    require_permission(actor=actor, workspace_id=collection.workspace_id, needed=Permission.WRITE)
    fields: list[str] = []
    if name is not None:
        if not name.strip():
            raise InvalidAssetInput("A name is required.", path=["name"])
        limit = column_limit(Collection, "name")
        collection.name = require_length(name.strip(), limit=limit, path=["name"])
        fields.append("name")
    if description is not None:
        limit = DESCRIPTION_MAX_LENGTH
        collection.description = require_length(description, limit=limit, path=["description"])
        fields.append("description")
    if fields:
        validate_fields(collection, exclude=["workspace", "created_by"])
        try:
            with transaction.atomic():
                collection.save(update_fields=[*fields, "updated_at"])
        except IntegrityError:
            raise CollectionNameTaken(
                "A collection with this name already exists.", path=["name"]
            ) from None
        events.record(
            collection.workspace_id,
            "collection.updated",
            {"collectionId": global_id("Collection", collection.pk), "fields": fields},
        )
    return collection


@dataclass(frozen=True)
class RowError:
    index: int
    code: str
    message: str
    path: list[str] | None


@dataclass
class BulkResult:
    updated: list[Asset] = field(default_factory=list)  # each asset once
    errors: list[RowError] = field(default_factory=list)
    applied_rows: int = 0  # rows, so an asset named in two rows counts twice


@dataclass(frozen=True)
class BulkItem:
    asset_id: int | None  # None: the given id was malformed or of another type
    changes: AssetChanges


def assets_bulk_update(*, items: list[BulkItem], all_or_nothing: bool, actor: Actor) -> BulkResult:
    """Edit many assets in a few statements.

    all_or_nothing: any bad row rejects the whole call and changes nothing. Otherwise valid rows
    are applied and each bad row is reported with its index and code.
    """
    if len(items) > BULK_LIMIT:
        raise InvalidAssetInput(f"At most {BULK_LIMIT} rows per call.", path=["items"])
    with transaction.atomic():
        wanted = {item.asset_id for item in items if item.asset_id is not None}
        # In id order, as every change that locks several assets takes them (a move, a
        # deletion's batch): two never wait for each other's rows in opposite orders.
        found = {
            asset.pk: asset
            for asset in Asset.objects.select_for_update()
            .filter(pk__in=wanted, workspace_id__in=actor.workspace_ids(Permission.READ))
            .order_by("pk")
        }
        result = BulkResult()
        staged: dict[int, tuple[Asset, dict[str, Any]]] = {}
        for index, item in enumerate(items):
            try:
                asset = found.get(item.asset_id or 0)
                if asset is None:
                    raise NotFound("No such asset.", path=["id"])
                require_permission(
                    actor=actor, workspace_id=asset.workspace_id, needed=Permission.WRITE
                )
                _editable(asset)
                earlier = staged[asset.pk][1] if asset.pk in staged else {}
                current = earlier.get("custom_metadata", asset.custom_metadata)
                values = with_merge(clean_changes(item.changes), current)
            except DomainError as error:
                result.errors.append(RowError(index, error.code, error.message, error.path))
                continue
            staged[asset.pk] = (asset, {**earlier, **values})
            result.applied_rows += 1
        if result.errors and all_or_nothing:
            return BulkResult(errors=result.errors)
        _apply(staged, result)
    return result


def _apply(staged: dict[int, tuple[Asset, dict[str, Any]]], result: BulkResult) -> None:
    # bulk_update does not apply auto_now, so the timestamp is set here.
    now = timezone.now()
    by_fields: dict[tuple[str, ...], list[Asset]] = {}
    for asset, values in staged.values():
        for name, value in values.items():
            setattr(asset, name, value)
        asset.updated_at = now
        if values:
            by_fields.setdefault(tuple(sorted(values)), []).append(asset)
        result.updated.append(asset)
    for fields, assets in by_fields.items():
        Asset.objects.bulk_update(assets, [*fields, "updated_at"], batch_size=500)
        per_workspace: dict[int, list[dict[str, Any]]] = {}
        for asset in assets:
            per_workspace.setdefault(asset.workspace_id, []).append(
                {**asset_event_payload(asset), "fields": list(fields)}
            )
        for workspace_id, payloads in per_workspace.items():
            events.record_many(workspace_id, "asset.updated", payloads)
