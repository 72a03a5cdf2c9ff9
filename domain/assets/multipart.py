"""Multipart uploads: a large file goes to storage in parts, straight from the client, and a
dropped part is sent again without starting over.

    start     -> the asset (AWAITING_UPLOAD), its upload id, part size and part count
    part URLs -> a presigned PUT per part number asked for (again, for a part that failed)
    parts     -> what the store holds so far, and which parts are missing (to resume)
    complete  -> every part there at its planned size: the store joins them, and the asset goes
                 on exactly like assetUploadComplete (size check, the asset.process job)
    abort     -> the parts are dropped and the asset deleted, as if it had never been started

The store's side is in multipart_store (S3, or local files in embedded mode). An upload left
unfinished for DEPOT_MULTIPART_EXPIRY_HOURS is aborted by multipart_uploads_expire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from domain.accounts.actor import Actor
from domain.accounts.models import Permission
from domain.accounts.selectors import require_permission
from domain.assets import multipart_store, object_removals, services
from domain.assets.errors import (
    InvalidUpload,
    UploadMissing,
    UploadPartMismatch,
    UploadPartsMissing,
    UploadSizeMismatch,
)
from domain.assets.models import Asset, AssetState, Collection, MultipartUpload
from domain.assets.multipart_store import PartTarget, StoredPart
from domain.assets.services import OnDuplicate, UploadCompleted, asset_event_payload
from domain.common.errors import InvalidState, NotFound
from domain.common.text import require_items, require_length
from domain.jobs import events

MAX_PARTS = 10_000  # S3's limit
MAX_PART_URLS = 1_000  # per call, to keep an answer small
MAX_PART_BYTES = 5 * 1024**3  # S3's limit


def part_plan(size: int) -> tuple[int, int]:
    """(part size, part count) for a file of `size` bytes: parts of the configured size, or
    larger when the file would need more than S3's 10,000 parts."""
    part_size = max(settings.DEPOT_MULTIPART_PART_BYTES, -(-size // MAX_PARTS))
    return part_size, -(-size // part_size)


def planned_size(upload: MultipartUpload, number: int, total: int) -> int:
    """The exact size of part `number`: the part size, but the last part has what is left."""
    if number < upload.part_count:
        return upload.part_size
    return total - upload.part_size * (upload.part_count - 1)


def expires_at(upload: MultipartUpload) -> datetime:
    return upload.created_at + timedelta(hours=settings.DEPOT_MULTIPART_EXPIRY_HOURS)


@dataclass(frozen=True)
class MultipartStarted:
    asset: Asset
    # None when nothing is to be uploaded: the existing asset was linked instead.
    upload: MultipartUpload | None
    duplicate_of: Asset | None = None


@transaction.atomic
def asset_multipart_upload_start(
    *,
    collection: Collection,
    filename: str,
    content_type: str,
    size: int,
    title: str | None,
    actor: Actor,
    sha256: str | None = None,
    on_duplicate: OnDuplicate = OnDuplicate.KEEP_BOTH,
) -> MultipartStarted:
    """Create the asset and a multipart upload for its bytes; the same checks, dedup and
    key as assetUploadStart."""
    checked = services.check_upload(
        collection=collection,
        filename=filename,
        content_type=content_type,
        size=size,
        title=title,
        actor=actor,
        sha256=sha256,
    )
    part_size, part_count = part_plan(checked.size)
    if part_size > MAX_PART_BYTES:
        raise InvalidUpload("The file is larger than the object store accepts.", path=["size"])
    duplicate = services.upload_duplicate(checked)
    if duplicate is not None and on_duplicate == OnDuplicate.LINK:
        return MultipartStarted(asset=duplicate, upload=None, duplicate_of=duplicate)
    asset = services.awaiting_asset_create(upload=checked, actor=actor)
    # The store's call is made before the event is recorded, so the workspace's event lock is
    # not held across the network. Should this transaction roll back, the store keeps an
    # upload no row names; multipart_uploads_expire aborts it once it is old enough.
    upload_id = multipart_store.create(
        key=asset.storage_key, content_type=asset.declared_content_type
    )
    upload = MultipartUpload.objects.create(
        asset=asset, upload_id=upload_id, part_size=part_size, part_count=part_count
    )
    events.record(asset.workspace_id, "asset.created", asset_event_payload(asset))
    return MultipartStarted(asset=asset, upload=upload, duplicate_of=duplicate)


def multipart_started_again(asset_pk: int, duplicate_of: int | None = None) -> MultipartStarted:
    """What a start returned, again: for a start repeated with its idempotency key. NOT_FOUND
    if its asset is gone (the upload was aborted, or the asset deleted)."""
    asset = Asset.objects.filter(pk=asset_pk).first()
    if asset is None:
        raise NotFound(
            "The upload started with this idempotency key is gone (aborted or deleted); "
            "start again with another key.",
            path=["idempotencyKey"],
        )
    duplicate = Asset.objects.filter(pk=duplicate_of).first() if duplicate_of else None
    return MultipartStarted(
        asset=asset,
        upload=MultipartUpload.objects.filter(asset=asset).first(),
        duplicate_of=duplicate,
    )


def _open_upload(asset: Asset) -> MultipartUpload:
    """The asset's upload in progress, or INVALID_STATE."""
    if asset.state == AssetState.DELETING:
        raise InvalidState("The asset is being deleted.", path=["assetId"])
    upload = MultipartUpload.objects.filter(asset=asset).first()
    if upload is None or asset.state != AssetState.AWAITING_UPLOAD:
        raise InvalidState("This asset has no multipart upload in progress.", path=["assetId"])
    return upload


def asset_multipart_upload_part_urls(
    *, asset: Asset, part_numbers: Sequence[int], actor: Actor
) -> list[PartTarget]:
    """A presigned PUT for each part asked for; ask again for a part whose upload failed."""
    require_permission(actor=actor, workspace_id=asset.workspace_id, needed=Permission.WRITE)
    upload = _open_upload(asset)
    numbers = sorted(set(part_numbers))
    if not numbers or len(numbers) > MAX_PART_URLS:
        raise InvalidUpload(f"Ask for 1 to {MAX_PART_URLS} parts at a time.", path=["partNumbers"])
    if numbers[0] < 1 or numbers[-1] > upload.part_count:
        raise InvalidUpload(f"Part numbers go from 1 to {upload.part_count}.", path=["partNumbers"])
    return multipart_store.presign_parts(
        key=asset.storage_key,
        upload_id=upload.upload_id,
        parts=[(number, planned_size(upload, number, asset.size)) for number in numbers],
    )


@dataclass(frozen=True)
class UploadProgress:
    upload: MultipartUpload
    parts: list[StoredPart]
    missing: list[int]


def asset_multipart_upload_parts(*, asset: Asset, actor: Actor) -> UploadProgress:
    """The parts the store holds (S3 ListParts), one per number, and the numbers missing."""
    require_permission(actor=actor, workspace_id=asset.workspace_id, needed=Permission.WRITE)
    upload = _open_upload(asset)
    copies = _copies_by_number(_stored_parts(asset, upload))
    parts = [
        _newest(copies[n], planned_size(upload, n, asset.size))[0]
        for n in sorted(copies)
        if 1 <= n <= upload.part_count
    ]
    missing = [n for n in range(1, upload.part_count + 1) if n not in copies]
    return UploadProgress(upload=upload, parts=parts, missing=missing)


def _copies_by_number(stored: list[StoredPart]) -> dict[int, list[StoredPart]]:
    copies: dict[int, list[StoredPart]] = {}
    for part in stored:
        copies.setdefault(part.number, []).append(part)
    return copies


def _newest(copies: list[StoredPart], planned: int) -> tuple[StoredPart, bool]:
    """The copy of a part that counts: of those with the planned size (if any), the newest.
    The flag says whether that choice is certain: the store's times have whole seconds, so
    two copies uploaded within one second cannot be told apart."""
    fitting = [copy for copy in copies if copy.size == planned] or copies
    newest = max(fitting, key=_modified)
    rivals = {copy.etag for copy in fitting if _modified(copy) == _modified(newest)}
    return newest, len(rivals) == 1


def _modified(part: StoredPart) -> float:
    return part.modified.timestamp() if part.modified is not None else 0.0


def _stored_parts(asset: Asset, upload: MultipartUpload) -> list[StoredPart]:
    try:
        return multipart_store.list_parts(key=asset.storage_key, upload_id=upload.upload_id)
    except multipart_store.UploadGone:
        raise UploadMissing(
            "The object store no longer has this upload: abort it and start again.",
            path=["assetId"],
        ) from None


# An ETag is an MD5 in hex, quoted (S3, SeaweedFS, embedded mode), with "-<parts>" for an
# object joined from parts: far below this. A longer one matches no part, and was echoed whole
# in UPLOAD_PART_MISMATCH's message.
ETAG_MAX_LENGTH = 128


@dataclass(frozen=True)
class ClientPart:
    """A part as the client reports it: its number and the ETag its PUT answered."""

    number: int
    etag: str


def asset_multipart_upload_complete(
    *, asset: Asset, actor: Actor, parts: Sequence[ClientPart] | None = None
) -> UploadCompleted:
    """Join the parts and queue processing, like assetUploadComplete; repeating it returns
    the same job. Refused, with every part left in place, when a part is missing, has another
    size than planned, or (when the client lists its parts) has another ETag."""
    require_permission(actor=actor, workspace_id=asset.workspace_id, needed=Permission.WRITE)
    if parts is not None:  # one per part: more than an upload can have matches nothing
        require_items(parts, limit=MAX_PARTS, path=["parts"])
    for part in parts or ():
        require_length(part.etag, limit=ETAG_MAX_LENGTH, path=["parts", str(part.number), "etag"])
    if asset.state != AssetState.AWAITING_UPLOAD:
        return services.asset_upload_complete(asset=asset, actor=actor)
    upload = _open_upload(asset)
    try:
        stored = multipart_store.list_parts(key=asset.storage_key, upload_id=upload.upload_id)
    except multipart_store.UploadGone:
        # The store finished it before a crash kept us from recording that (or it was
        # aborted): assetUploadComplete's check of the object decides.
        stored = None
    if stored is not None:
        chosen = _verified(upload, asset.size, stored, parts)
        try:
            multipart_store.complete(
                key=asset.storage_key, upload_id=upload.upload_id, parts=chosen
            )
        except multipart_store.UploadGone:
            pass  # completed concurrently; the object check below decides
        except multipart_store.PartChanged:
            raise UploadPartMismatch(
                "A part was uploaded again while completing: list the parts and retry.",
                path=["parts"],
            ) from None
    with transaction.atomic():
        completed = services.asset_upload_complete(asset=asset, actor=actor)
        MultipartUpload.objects.filter(pk=upload.pk).delete()
    return completed


def _verified(
    upload: MultipartUpload,
    total: int,
    stored: list[StoredPart],
    reported: Sequence[ClientPart] | None,
) -> list[StoredPart]:
    """The copies of parts 1..part_count to join, after checking that each is there at its
    planned size and, when the client lists its parts, is the one the client sent."""
    copies = _copies_by_number(stored)
    wanted = range(1, upload.part_count + 1)
    etags = {part.number: _unquoted(part.etag) for part in reported or ()}
    missing = [n for n in wanted if n not in copies or (reported is not None and n not in etags)]
    if missing:
        shown = ", ".join(str(n) for n in missing[:20]) + (", ..." if len(missing) > 20 else "")
        raise UploadPartsMissing(
            f"{len(missing)} of {upload.part_count} parts are not uploaded: {shown}.",
            path=["parts"],
        )
    chosen = [_chosen(n, copies[n], planned_size(upload, n, total), etags.get(n)) for n in wanted]
    wrong = [part for part in chosen if part.size != planned_size(upload, part.number, total)]
    if wrong:
        first = wrong[0]
        raise UploadSizeMismatch(
            f"The parts hold {sum(part.size for part in chosen)} bytes, but {total} were "
            f"announced: part {first.number} has {first.size} bytes instead of "
            f"{planned_size(upload, first.number, total)}. Upload "
            f"{'it' if len(wrong) == 1 else 'the wrong parts'} again.",
            path=["parts", str(first.number)],
        )
    return chosen


def _chosen(number: int, copies: list[StoredPart], planned: int, etag: str | None) -> StoredPart:
    if etag is not None:
        for copy in copies:
            if _unquoted(copy.etag) == etag:
                return copy
        raise UploadPartMismatch(
            f"Part {number} in storage is not the one sent with ETag {etag}: it was uploaded "
            "again since.",
            path=["parts", str(number)],
        )
    newest, certain = _newest(copies, planned)
    if not certain:
        raise UploadPartMismatch(
            f"Part {number} was stored twice within a second: complete with the ETags of the "
            "parts you sent.",
            path=["parts", str(number)],
        )
    return newest


def _unquoted(etag: str) -> str:
    return etag.strip().strip('"')


def asset_multipart_upload_abort(*, asset: Asset, actor: Actor) -> int:
    """Drop the stored parts and delete the asset, which never had its bytes; returns its id."""
    require_permission(actor=actor, workspace_id=asset.workspace_id, needed=Permission.WRITE)
    upload = _open_upload(asset)
    multipart_store.abort(key=asset.storage_key, upload_id=upload.upload_id)
    _awaiting_asset_delete(asset, reason="UPLOAD_ABORTED")
    return asset.pk


def _awaiting_asset_delete(asset: Asset, *, reason: str) -> None:
    """Delete the asset if it is still awaiting its bytes; INVALID_STATE when a completion (or
    a deletion) got to it first."""
    with transaction.atomic():
        locked = Asset.objects.select_for_update().filter(pk=asset.pk).first()
        if locked is None:
            return
        if locked.state == AssetState.DELETING:
            raise InvalidState("The asset is being deleted.", path=["assetId"])
        if locked.state != AssetState.AWAITING_UPLOAD:
            raise InvalidState("The upload was completed meanwhile.", path=["assetId"])
        payload = asset_event_payload(locked)
        locked.delete()
        # A local completion cut short may have joined the parts already; nothing else uses
        # the key. With the row, so that a stop before the deletion leaves it to the sweep.
        object_removals.schedule([asset.storage_key])
        events.record(
            locked.workspace_id,
            "asset.deleted",
            {**payload, "state": "DELETED", "reason": reason},
        )
    object_removals.remove([asset.storage_key])


def multipart_uploads_expire(*, now: datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Abort multipart uploads left unfinished past DEPOT_MULTIPART_EXPIRY_HOURS and delete
    their assets; then abort uploads the store holds that no row names any more (their asset
    was deleted, or the start rolled back). Run by the periodic multipart sweep."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.DEPOT_MULTIPART_EXPIRY_HOURS)
    expired = 0
    stale = MultipartUpload.objects.filter(created_at__lt=cutoff).select_related("asset")
    for upload in stale.order_by("created_at")[:limit]:
        multipart_store.abort(key=upload.asset.storage_key, upload_id=upload.upload_id)
        try:
            _awaiting_asset_delete(upload.asset, reason="UPLOAD_EXPIRED")
        except InvalidState:
            # Completed or being deleted meanwhile: the row is all there is to drop.
            MultipartUpload.objects.filter(pk=upload.pk).delete()
        expired += 1
    orphans = 0
    for pending in multipart_store.pending_uploads(initiated_before=cutoff)[:limit]:
        if not MultipartUpload.objects.filter(upload_id=pending.upload_id).exists():
            multipart_store.abort(key=pending.key, upload_id=pending.upload_id)
            orphans += 1
    return {"expired": expired, "orphans": orphans}
