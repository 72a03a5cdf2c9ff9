"""Deleting assets and collections: the rows go at once from view, the bytes through a job."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from domain.accounts.actor import Actor
from domain.accounts.models import Permission
from domain.accounts.selectors import require_permission
from domain.assets import multipart_store, storage
from domain.assets.models import Asset, AssetState, Collection, MultipartUpload, Rendition
from domain.assets.services import asset_event_payload
from domain.common.ids import global_id
from domain.jobs import events, registry
from domain.jobs.context import JobContext
from domain.jobs.models import Job, Lane
from domain.jobs.services import job_create

DELETE_ASSET_JOB = "asset.delete"
DELETE_COLLECTION_JOB = "collection.delete"


@transaction.atomic
def asset_delete(*, asset: Asset, actor: Actor) -> Job:
    """Mark the asset DELETING and queue the job that removes its objects, then its row."""
    require_permission(actor=actor, workspace_id=asset.workspace_id, needed=Permission.WRITE)
    asset = Asset.objects.select_for_update().get(pk=asset.pk)
    if asset.state != AssetState.DELETING:
        asset.state = AssetState.DELETING
        asset.save(update_fields=["state", "updated_at"])
        events.record(asset.workspace_id, "asset.deleting", asset_event_payload(asset))
    return job_create(
        workspace_id=asset.workspace_id,
        kind=DELETE_ASSET_JOB,
        parameters={"asset_id": asset.pk},
        created_by_id=actor.user.pk if actor.user else None,
        idempotency_key=f"{DELETE_ASSET_JOB}:{asset.pk}",
    )


@transaction.atomic
def collection_delete(*, collection: Collection, actor: Actor) -> Job:
    """Queue the deletion of a collection with all its assets (bulk lane).

    The assets are marked DELETING one at a time as the job reaches them, not all at once:
    a cancelled deletion then leaves the assets it did not reach exactly as they were."""
    require_permission(actor=actor, workspace_id=collection.workspace_id, needed=Permission.WRITE)
    job = job_create(
        workspace_id=collection.workspace_id,
        kind=DELETE_COLLECTION_JOB,
        parameters={"collection_id": collection.pk},
        created_by_id=actor.user.pk if actor.user else None,
        idempotency_key=f"{DELETE_COLLECTION_JOB}:{collection.pk}",
    )
    events.record(
        collection.workspace_id,
        "collection.deleting",
        {"collectionId": global_id("Collection", collection.pk), "jobId": global_id("Job", job.pk)},
    )
    return job


def _remove_objects(asset: Asset) -> None:
    # An upload in parts under way keeps its parts in the store until it is aborted: abort it
    # now rather than leave them to the hourly sweep of orphans. Its URLs are refused from here.
    for upload_id in MultipartUpload.objects.filter(asset=asset).values_list(
        "upload_id", flat=True
    ):
        multipart_store.abort(key=asset.storage_key, upload_id=upload_id)
    # Deleting a missing object is not an error in S3 or here, so a rerun repeats harmlessly.
    keys = [
        asset.storage_key,
        *Rendition.objects.filter(asset=asset).values_list("storage_key", flat=True),
    ]
    for key in keys:
        storage.delete_object(key)


def _delete_row(asset: Asset) -> None:
    with transaction.atomic():
        payload = asset_event_payload(asset)
        asset.delete()
        events.record(asset.workspace_id, "asset.deleted", {**payload, "state": "DELETED"})


@registry.register(DELETE_ASSET_JOB, lane=Lane.INTERACTIVE)
def delete_asset(ctx: JobContext) -> dict[str, Any]:
    asset = Asset.objects.filter(pk=ctx.parameters["asset_id"]).first()
    if asset is None:
        return {"alreadyDeleted": True}
    _remove_objects(asset)
    _delete_row(asset)
    return {"deleted": 1}


def _mark_deleting(asset: Asset) -> None:
    with transaction.atomic():
        locked = Asset.objects.select_for_update().filter(pk=asset.pk).first()
        if locked is None or locked.state == AssetState.DELETING:
            return
        locked.state = AssetState.DELETING
        locked.save(update_fields=["state", "updated_at"])
        events.record(locked.workspace_id, "asset.deleting", asset_event_payload(locked))


@registry.register(DELETE_COLLECTION_JOB, lane=Lane.BULK)
def delete_collection(ctx: JobContext) -> dict[str, Any]:
    collection = Collection.objects.filter(pk=ctx.parameters["collection_id"]).first()
    if collection is None:
        return {"alreadyDeleted": True}
    deleted = 0
    while True:
        # Until none is left, so an asset uploaded while the job runs goes too, with its
        # files: the row's cascade alone would leave its objects behind in storage.
        while batch := list(Asset.objects.filter(collection=collection).order_by("pk")[:200]):
            total = deleted + Asset.objects.filter(collection=collection).count()
            for asset in batch:
                ctx.progress(deleted, total, "deleting assets")
                ctx.check_cancelled()
                _mark_deleting(asset)
                _remove_objects(asset)
                _delete_row(asset)
                deleted += 1
        with transaction.atomic():
            # The row lock makes a concurrent upload into the collection wait for this.
            Collection.objects.select_for_update().filter(pk=collection.pk).first()
            if Asset.objects.filter(collection=collection).exists():
                continue
            collection_id = global_id("Collection", collection.pk)
            workspace_id = collection.workspace_id
            collection.delete()
            events.record(workspace_id, "collection.deleted", {"collectionId": collection_id})
            break
    ctx.progress(deleted, deleted, "done")
    return {"deleted": deleted}
