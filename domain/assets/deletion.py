"""Deleting assets and collections: the rows go at once from view, the bytes through a job.

A job deletes its assets a batch at a time (`BATCH_SIZE`), in three steps per batch:
1. mark: the batch's rows are locked and marked DELETING, with their asset.deleting events, in
   one commit (from then on downloads, edits and processing refuse them);
2. remove: their originals' and renditions' objects are deleted from the store, on S3 with
   DeleteObjects requests of up to 1,000 keys, a few at once (and a multipart upload under way
   is aborted);
3. delete: the rows go, with their asset.deleted events, in one commit.
A run that stops between the steps leaves DELETING rows whose objects may be gone; its retry
repeats the steps (deleting a missing object is not an error). One asset at a time took a
dozen round trips to Postgres and one request to S3 per object (bench/deletion: 1,000 assets).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from django.db import connection, transaction
from django.utils import timezone

from domain.accounts.actor import Actor
from domain.accounts.models import Permission
from domain.accounts.selectors import require_permission
from domain.assets import multipart_store, storage
from domain.assets.models import Asset, AssetState, Collection, MultipartUpload, Rendition
from domain.assets.services import asset_event_payload
from domain.common.ids import global_id
from domain.jobs import events, registry
from domain.jobs.context import JobContext
from domain.jobs.errors import JobFailed
from domain.jobs.models import FINAL_STATES, Job, Lane
from domain.jobs.services import job_create

DELETE_ASSET_JOB = "asset.delete"
DELETE_COLLECTION_JOB = "collection.delete"

# Assets per batch: a cancel is honoured between batches, and a batch's objects (an original
# and a few renditions each) fit one DeleteObjects request.
BATCH_SIZE = 100


@transaction.atomic
def asset_delete(*, asset: Asset, actor: Actor) -> Job:
    """Mark the asset DELETING and queue the job that removes its objects, then its row."""
    require_permission(actor=actor, workspace_id=asset.workspace_id, needed=Permission.WRITE)
    asset = Asset.objects.select_for_update().get(pk=asset.pk)
    if asset.state != AssetState.DELETING:
        asset.state = AssetState.DELETING
        asset.save(update_fields=["state", "updated_at"])
        events.record(asset.workspace_id, "asset.deleting", asset_event_payload(asset))
    key = f"{DELETE_ASSET_JOB}:{asset.pk}"
    _free_key_of_an_ended_deletion(asset.workspace_id, key)
    return job_create(
        workspace_id=asset.workspace_id,
        kind=DELETE_ASSET_JOB,
        parameters={"asset_id": asset.pk},
        created_by_id=actor.user.pk if actor.user else None,
        idempotency_key=key,
    )


def _free_key_of_an_ended_deletion(workspace_id: int, key: str) -> None:
    """Asked to delete what an earlier deletion did not (its job was cancelled, or failed:
    the store refused), start a new one: the key is freed, and the old job stays in the ledger
    as it ended. Before, the repeat returned the ended job, and an asset stayed DELETING (no
    edits, downloads or processing) until someone found that job to retry."""
    Job.objects.filter(
        workspace_id=workspace_id, idempotency_key=key, state__in=FINAL_STATES
    ).update(idempotency_key=None)


@transaction.atomic
def collection_delete(*, collection: Collection, actor: Actor) -> Job:
    """Queue the deletion of a collection with all its assets (bulk lane).

    The assets are marked DELETING a batch at a time as the job reaches them, not all at once:
    a cancelled deletion then leaves the assets it did not reach exactly as they were."""
    require_permission(actor=actor, workspace_id=collection.workspace_id, needed=Permission.WRITE)

    def announce(job: Job) -> None:  # not for a repeat: the deletion under way said it
        events.record(
            collection.workspace_id,
            "collection.deleting",
            {
                "collectionId": global_id("Collection", collection.pk),
                "jobId": global_id("Job", job.pk),
            },
        )

    key = f"{DELETE_COLLECTION_JOB}:{collection.pk}"
    _free_key_of_an_ended_deletion(collection.workspace_id, key)
    return job_create(
        workspace_id=collection.workspace_id,
        kind=DELETE_COLLECTION_JOB,
        parameters={"collection_id": collection.pk},
        created_by_id=actor.user.pk if actor.user else None,
        idempotency_key=key,
        if_new=announce,
    )


class AssetBeingDeleted(JobFailed):
    """A job met an asset that a deletion has marked or removed (see lock_unless_deleting)."""

    code = "ASSET_DELETED"


def lock_unless_deleting(asset_id: int) -> None:
    """For a job that stores an asset's objects or changes its state (processing, renditions),
    inside the transaction that records it: lock the asset's row, and raise AssetBeingDeleted
    if a deletion has marked it (or deleted it). A deletion marks its assets under the same lock
    before it lists their objects, so each object is either on a row by then (and the deletion
    removes it) or its writer gets this error (and removes it itself), and no finished job
    turns a DELETING asset back into a READY or FAILED one."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("lock_unless_deleting must run inside the transaction of the change")
    state = (
        Asset.objects.select_for_update()
        .filter(pk=asset_id)
        .values_list("state", flat=True)
        .first()
    )
    if state is None or state == AssetState.DELETING:
        raise AssetBeingDeleted("The asset is being deleted.")


def _delete_assets(workspace_id: int, asset_ids: Sequence[int], **still: Any) -> int:
    """Delete the assets among `asset_ids` that are still there and match `still` (a filter:
    still in the collection); how many went."""
    assets = _mark_deleting(workspace_id, asset_ids, still)
    if not assets:
        return 0
    _remove_objects(assets)
    _delete_rows(workspace_id, assets)
    return len(assets)


def _mark_deleting(
    workspace_id: int, asset_ids: Sequence[int], still: dict[str, Any]
) -> list[Asset]:
    with transaction.atomic():
        assets = list(
            Asset.objects.select_for_update()
            .filter(pk__in=asset_ids, **still)
            .only("pk", "workspace_id", "collection_id", "state", "storage_key")
            .order_by("pk")
        )
        marking = [asset for asset in assets if asset.state != AssetState.DELETING]
        if marking:
            now = timezone.now()
            Asset.objects.filter(pk__in=[asset.pk for asset in marking]).update(
                state=AssetState.DELETING, updated_at=now
            )
            for asset in marking:
                asset.state, asset.updated_at = AssetState.DELETING, now
            events.record_many(
                workspace_id, "asset.deleting", [asset_event_payload(a) for a in marking]
            )
    return assets


def _remove_objects(assets: list[Asset]) -> None:
    ids = [asset.pk for asset in assets]
    # An upload in parts under way keeps its parts in the store until it is aborted: abort it
    # now rather than leave them to the hourly sweep of orphans. Its URLs are refused from here.
    for key, upload_id in MultipartUpload.objects.filter(asset_id__in=ids).values_list(
        "asset__storage_key", "upload_id"
    ):
        multipart_store.abort(key=key, upload_id=upload_id)
    keys = [asset.storage_key for asset in assets if asset.storage_key]
    keys += Rendition.objects.filter(asset_id__in=ids).values_list("storage_key", flat=True)
    try:
        storage.delete_objects(keys)
    except storage.ObjectsKept as kept:
        # The rows stay, DELETING: a retry of the job removes what is left.
        raise JobFailed(str(kept), code=kept.code) from kept


def _delete_rows(workspace_id: int, assets: list[Asset]) -> None:
    with transaction.atomic():
        Asset.objects.filter(pk__in=[asset.pk for asset in assets]).delete()
        events.record_many(
            workspace_id,
            "asset.deleted",
            [{**asset_event_payload(asset), "state": "DELETED"} for asset in assets],
        )


@registry.register(DELETE_ASSET_JOB, lane=Lane.INTERACTIVE)
def delete_asset(ctx: JobContext) -> dict[str, Any]:
    asset_id = ctx.parameters["asset_id"]
    workspace_id = Asset.objects.filter(pk=asset_id).values_list("workspace_id", flat=True).first()
    if workspace_id is None or not _delete_assets(workspace_id, [asset_id]):
        return {"alreadyDeleted": True}
    return {"deleted": 1}


# A large collection goes 100 assets at a time; a run stopped by the limit is finished by a
# retry, but should not need one for an ordinary collection.
@registry.register(DELETE_COLLECTION_JOB, lane=Lane.BULK, time_limit=3600)
def delete_collection(ctx: JobContext) -> dict[str, Any]:
    collection_id = ctx.parameters["collection_id"]
    # The job is the collection's workspace's (collection_delete): no read of the row first.
    workspace_id, in_it = ctx.job.workspace_id, {"collection_id": collection_id}
    deleted = 0
    # Until none is left, so an asset uploaded while the job runs goes too, with its files: the
    # row's cascade alone would leave its objects behind in storage. An empty collection's row
    # goes at the first try: five round trips to Postgres in all.
    while (ended := _delete_collection_if_empty(workspace_id, collection_id)) is None:
        left = Asset.objects.filter(**in_it).order_by("pk").values_list("pk", flat=True)
        while batch := list(left[:BATCH_SIZE]):
            ctx.progress(deleted, deleted + left.count(), "deleting assets")
            ctx.check_cancelled()
            deleted += _delete_assets(workspace_id, batch, **in_it)
    if ended == "missing" and not deleted:
        return {"alreadyDeleted": True}
    ctx.progress(deleted, deleted, "done")
    return {"deleted": deleted}


@transaction.atomic
def _delete_collection_if_empty(
    workspace_id: int, collection_id: int
) -> Literal["deleted", "missing"] | None:
    """Delete the collection's row with its collection.deleted event if no asset is left in it:
    "deleted", or "missing" if it was gone already; None while it holds assets."""
    # The row lock first. A change putting assets into the collection holds a key-share lock on
    # the row from its start (services.lock_collection_for_new_assets): this waits for it, and
    # the emptiness check after the lock sees its assets; one that starts later waits for this
    # and finds the row gone. The check is in the DELETE itself, which needs no Collector: no
    # other row refers to a collection but its assets.
    if not Collection.objects.select_for_update().filter(pk=collection_id).exists():
        return "missing"
    quote = connection.ops.quote_name
    collections, assets = quote(Collection._meta.db_table), quote(Asset._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {collections} WHERE id = %s AND NOT EXISTS "  # noqa: S608 (our names)
            f"(SELECT 1 FROM {assets} WHERE collection_id = %s)",
            [collection_id, collection_id],
        )
        if cursor.rowcount == 0:
            return None
    collection_gid = global_id("Collection", collection_id)
    events.record(workspace_id, "collection.deleted", {"collectionId": collection_gid})
    return "deleted"
