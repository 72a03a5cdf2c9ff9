from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from enum import StrEnum

from django.db import IntegrityError, connection, transaction

from domain.accounts.actor import Actor
from domain.accounts.models import Permission
from domain.accounts.selectors import require_permission
from domain.assets import storage
from domain.assets.errors import (
    ActiveContent,
    CollectionNameTaken,
    InvalidUpload,
    KindNotAllowed,
    UploadMissing,
    UploadSizeMismatch,
    UploadTooLarge,
)
from domain.assets.media import claims
from domain.assets.models import Asset, AssetState, Collection
from domain.assets.policy import kind_of, media_settings_for
from domain.common.errors import InvalidState, NotFound
from domain.common.ids import global_id
from domain.common.text import DESCRIPTION_MAX_LENGTH, column_limit, require_length
from domain.common.validation import validate_fields
from domain.jobs import events
from domain.jobs.models import Job
from domain.jobs.services import job_create

PROCESS_JOB = "asset.process"
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")


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
    name = require_length(name.strip(), limit=column_limit(Collection, "name"), path=["name"])
    require_length(description, limit=DESCRIPTION_MAX_LENGTH, path=["description"])
    collection = Collection(
        workspace_id=workspace_id, name=name, description=description, created_by=actor.user
    )
    validate_fields(collection, exclude=["workspace", "created_by"])
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


class OnDuplicate(StrEnum):
    """What assetUploadStart does when the workspace already has a READY asset of these bytes."""

    KEEP_BOTH = "KEEP_BOTH"
    LINK = "LINK"


@dataclass(frozen=True)
class UploadStarted:
    asset: Asset
    # None when nothing is to be uploaded: the existing asset was linked instead.
    target: storage.UploadTarget | None
    duplicate_of: Asset | None = None


def find_duplicate(
    *,
    workspace_id: int,
    sha256: str,
    exclude: int | None = None,
    processed_with: str | None = None,
) -> Asset | None:
    """The oldest READY asset of the workspace with these bytes (processed under these
    settings, when `processed_with` is given)."""
    found = Asset.objects.filter(workspace_id=workspace_id, sha256=sha256, state=AssetState.READY)
    if exclude is not None:
        found = found.exclude(pk=exclude)
    if processed_with is not None:
        found = found.filter(processed_with=processed_with)
    return found.order_by("pk").first()


@dataclass(frozen=True)
class CheckedUpload:
    """An upload the workspace accepts, with its input cleaned (see check_upload)."""

    collection: Collection
    filename: str
    content_type: str
    size: int
    title: str
    expected_sha256: str


def check_upload(
    *,
    collection: Collection,
    filename: str,
    content_type: str,
    size: int,
    title: str | None,
    actor: Actor,
    sha256: str | None = None,
) -> CheckedUpload:
    """The checks every way of uploading makes before anything is created: the actor may
    write, the declared type and the extension are not of a file a browser would run, and the
    workspace's media settings accept the size and the declared kind."""
    require_permission(actor=actor, workspace_id=collection.workspace_id, needed=Permission.WRITE)
    policy = media_settings_for(collection.workspace_id)
    if size <= 0:
        raise InvalidUpload("The size must be at least one byte.", path=["size"])
    if size > policy.max_upload_bytes:
        raise UploadTooLarge(
            f"Uploads are limited to {policy.max_upload_bytes} bytes.", path=["size"]
        )
    if not filename.strip():
        raise InvalidUpload("A file name is required.", path=["filename"])
    filename = filename.strip()
    require_length(filename, limit=column_limit(Asset, "original_filename"), path=["filename"])
    title = (title or filename).strip()
    require_length(title, limit=column_limit(Asset, "title"), path=["title"])
    content_type = content_type.strip().lower() or "application/octet-stream"
    limit = column_limit(Asset, "declared_content_type")
    require_length(content_type, limit=limit, path=["contentType"])
    if not _CONTENT_TYPE.fullmatch(content_type):
        raise InvalidUpload("The content type must look like type/subtype.", path=["contentType"])
    _refuse_active(content_type, filename)
    kind = kind_of(content_type)
    if not policy.allows(kind):
        raise KindNotAllowed(
            f"This workspace does not accept {kind.value} files.", path=["contentType"]
        )
    expected = (sha256 or "").strip().lower()
    if sha256 is not None and not _SHA256.fullmatch(expected):
        raise InvalidUpload("The SHA-256 must be 64 hexadecimal digits.", path=["sha256"])
    return CheckedUpload(
        collection=collection,
        filename=filename,
        content_type=content_type,
        size=size,
        title=title,
        expected_sha256=expected,
    )


def _refuse_active(content_type: str, filename: str) -> None:
    """The types processing refuses whatever the bytes (media.claims.ACTIVE): the store would
    hold, and could serve, the file as that type. SVG is not one: its bytes decide."""
    claim = claims.active_claim(claims.collect(content_type, filename))
    if claim is not None:
        raise ActiveContent(
            f"The {claim.source} {claim.label} is of a file a browser would run; such files "
            "are not accepted.",
            path=["contentType" if claim.source == "declared type" else "filename"],
        )


def upload_duplicate(upload: CheckedUpload) -> Asset | None:
    """A READY asset of the workspace with the announced bytes, if a SHA-256 was announced."""
    if not upload.expected_sha256:
        return None
    return find_duplicate(
        workspace_id=upload.collection.workspace_id, sha256=upload.expected_sha256
    )


def lock_collection_for_new_assets(collection_id: int) -> None:
    """For a change that puts assets into a collection (an upload's new asset, a move), inside
    its transaction and before its other writes: a key-share lock on the collection's row, as an
    immediate foreign key check would take. NotFound if the row is gone.

    A deletion of the collection (domain/assets/deletion.py) locks the row for update before it
    checks that no asset is left. With this lock first, it either waits for the change and then
    finds its assets (and deletes them too), or it has deleted the row and the change gets
    NOT_FOUND. Without it, Django's deferred foreign key is checked only at the change's commit,
    after the change took its workspace's event counter, which the deletion also needs: the two
    deadlocked. Uploads into one collection do not wait for each other (key-share locks do not
    conflict). SQLite (embedded) runs one writing transaction at a time and has no such lock."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(
            "lock_collection_for_new_assets must run inside the change's transaction"
        )
    if connection.vendor != "postgresql":
        return
    table = connection.ops.quote_name(Collection._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR KEY SHARE", [collection_id])  # noqa: S608 (our names)
        if cursor.fetchone() is None:
            raise NotFound("No such collection.", path=["collectionId"])


def awaiting_asset_create(*, upload: CheckedUpload, actor: Actor) -> Asset:
    """The asset row, AWAITING_UPLOAD at a key of Depot's; the caller records asset.created."""
    collection = upload.collection
    lock_collection_for_new_assets(collection.pk)
    asset = Asset(
        workspace_id=collection.workspace_id,
        collection=collection,
        title=upload.title,
        original_filename=upload.filename,
        declared_content_type=upload.content_type,
        size=upload.size,
        expected_sha256=upload.expected_sha256,
        created_by=actor.user,
        # The key never comes from the file name, so same-name uploads cannot collide.
        storage_key=f"pending/{uuid.uuid4().hex}",
    )
    asset.save()
    asset.storage_key = f"{collection.workspace_id}/{asset.pk}/{uuid.uuid4().hex}"
    asset.save(update_fields=["storage_key"])
    return asset


@transaction.atomic
def asset_upload_start(
    *,
    collection: Collection,
    filename: str,
    content_type: str,
    size: int,
    title: str | None,
    actor: Actor,
    sha256: str | None = None,
    on_duplicate: OnDuplicate = OnDuplicate.KEEP_BOTH,
) -> UploadStarted:
    """Create the asset and a presigned form that lets the client post exactly these bytes.

    With `sha256`, the processing job checks the bytes against it, and an asset of the same
    bytes already READY in the workspace is reported (and with LINK returned instead)."""
    upload = check_upload(
        collection=collection,
        filename=filename,
        content_type=content_type,
        size=size,
        title=title,
        actor=actor,
        sha256=sha256,
    )
    duplicate = upload_duplicate(upload)
    if duplicate is not None and on_duplicate == OnDuplicate.LINK:
        return UploadStarted(asset=duplicate, target=None, duplicate_of=duplicate)
    asset = awaiting_asset_create(upload=upload, actor=actor)
    events.record(asset.workspace_id, "asset.created", asset_event_payload(asset))
    target = storage.presign_upload(
        key=asset.storage_key, content_type=asset.declared_content_type, size=size
    )
    return UploadStarted(asset=asset, target=target, duplicate_of=duplicate)


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
        if asset.state == AssetState.DELETING:  # deleted before its bytes were confirmed
            raise InvalidState("The asset is being deleted.", path=["assetId"])
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
