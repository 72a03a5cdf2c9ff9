from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction

from domain.accounts.actor import Actor
from domain.accounts.models import Permission
from domain.accounts.selectors import require_permission
from domain.assets import storage
from domain.assets.errors import (
    CollectionNameTaken,
    InvalidUpload,
    UploadMissing,
    UploadSizeMismatch,
    UploadTooLarge,
)
from domain.assets.models import Asset, AssetState, Collection
from domain.common.errors import InvalidState
from domain.common.ids import global_id
from domain.jobs import events
from domain.jobs.models import Job
from domain.jobs.services import job_create

PROCESS_JOB = "asset.process"
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


def asset_event_payload(asset: Asset) -> dict[str, object]:
    return {
        "assetId": global_id("Asset", asset.pk),
        "collectionId": global_id("Collection", asset.collection_id),
        "state": asset.state,
    }


@transaction.atomic
def collection_create(
    *, workspace_id: int, name: str, description: str, actor: Actor
) -> Collection:
    require_permission(actor=actor, workspace_id=workspace_id, needed=Permission.WRITE)
    collection = Collection(
        workspace_id=workspace_id, name=name.strip(), description=description, created_by=actor.user
    )
    collection.full_clean(exclude=["workspace", "created_by"], validate_unique=False)
    try:
        with transaction.atomic():
            collection.save()
    except IntegrityError:
        raise CollectionNameTaken(
            "A collection with this name already exists.", path=["name"]
        ) from None
    events.record(
        workspace_id,
        "collection.created",
        {"collectionId": global_id("Collection", collection.pk), "name": collection.name},
    )
    return collection


@dataclass(frozen=True)
class UploadStarted:
    asset: Asset
    target: storage.UploadTarget


@transaction.atomic
def asset_upload_start(
    *,
    collection: Collection,
    filename: str,
    content_type: str,
    size: int,
    title: str | None,
    actor: Actor,
) -> UploadStarted:
    """Create the asset and a presigned form that lets the client post exactly these bytes."""
    require_permission(actor=actor, workspace_id=collection.workspace_id, needed=Permission.WRITE)
    if size <= 0:
        raise InvalidUpload("The size must be at least one byte.", path=["size"])
    if size > settings.DEPOT_MAX_UPLOAD_BYTES:
        raise UploadTooLarge(
            f"Uploads are limited to {settings.DEPOT_MAX_UPLOAD_BYTES} bytes.", path=["size"]
        )
    if not filename.strip():
        raise InvalidUpload("A file name is required.", path=["filename"])
    content_type = content_type.strip().lower() or "application/octet-stream"
    if not _CONTENT_TYPE.fullmatch(content_type):
        raise InvalidUpload("The content type must look like type/subtype.", path=["contentType"])
    asset = Asset(
        workspace_id=collection.workspace_id,
        collection=collection,
        title=(title or filename).strip()[:300],
        original_filename=filename.strip()[:255],
        declared_content_type=content_type[:120],
        size=size,
        created_by=actor.user,
        # The key never comes from the file name, so same-name uploads cannot collide.
        storage_key=f"pending/{uuid.uuid4().hex}",
    )
    asset.save()
    asset.storage_key = f"{collection.workspace_id}/{asset.pk}/{uuid.uuid4().hex}"
    asset.save(update_fields=["storage_key"])
    events.record(asset.workspace_id, "asset.created", asset_event_payload(asset))
    target = storage.presign_upload(
        key=asset.storage_key, content_type=asset.declared_content_type, size=size
    )
    return UploadStarted(asset=asset, target=target)


@dataclass(frozen=True)
class UploadCompleted:
    asset: Asset
    job: Job


def asset_upload_complete(*, asset: Asset, actor: Actor) -> UploadCompleted:
    """Check the stored object and queue its processing. Repeating it returns the same job."""
    require_permission(actor=actor, workspace_id=asset.workspace_id, needed=Permission.WRITE)
    # The object store is checked outside the transaction: no row lock waits on the network.
    stored_size = storage.object_size(asset.storage_key)
    with transaction.atomic():
        asset = Asset.objects.select_for_update().get(pk=asset.pk)
        if asset.state != AssetState.AWAITING_UPLOAD:
            job = Job.objects.filter(
                workspace_id=asset.workspace_id, idempotency_key=_process_key(asset)
            ).first()
            if job is None:
                raise InvalidState("The upload of this asset was already completed.")
            return UploadCompleted(asset=asset, job=job)
        if stored_size is None:
            raise UploadMissing("Nothing was uploaded for this asset yet.", path=["assetId"])
        if stored_size != asset.size:
            # Remove the wrong bytes so a retry of the upload starts clean; the asset stays.
            storage.delete_object(asset.storage_key)
            raise UploadSizeMismatch(
                f"The upload has {stored_size} bytes, but {asset.size} were announced.",
                path=["assetId"],
            )
        asset.state = AssetState.UPLOADED
        asset.save(update_fields=["state", "updated_at"])
        events.record(asset.workspace_id, "asset.uploaded", asset_event_payload(asset))
        job = job_create(
            workspace_id=asset.workspace_id,
            kind=PROCESS_JOB,
            parameters={"asset_id": asset.pk},
            created_by_id=actor.user.pk if actor.user else None,
            idempotency_key=_process_key(asset),
        )
    return UploadCompleted(asset=asset, job=job)


def _process_key(asset: Asset) -> str:
    return f"{PROCESS_JOB}:{asset.pk}"
