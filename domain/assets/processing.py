"""The asset.process job: hash the bytes, analyse them with the media library, store the
renditions of the workspace's presets.

Written to be run twice: a rerun after a worker died writes the same renditions at the same
keys and updates the same rows, so nothing is duplicated, and a READY asset is left alone
unless the job says `force` (reprocessing).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import transaction

from domain.assets import media, object_removals, storage, worker_disk
from domain.assets.deletion import AssetBeingDeleted, lock_unless_deleting
from domain.assets.errors import (
    ORIGINAL_REMOVED,
    ActiveContent,
    KindNotAllowed,
    UploadChecksumMismatch,
)
from domain.assets.media.model import RENDITION_FORMATS
from domain.assets.models import Asset, AssetState, Rendition
from domain.assets.policy import MediaSettings, media_settings_of
from domain.assets.services import PROCESS_JOB, asset_event_payload, find_duplicate
from domain.assets.worker_disk import scratch_path
from domain.common.failpoints import failpoint
from domain.common.ids import global_id
from domain.jobs import events, registry
from domain.jobs.context import JobContext
from domain.jobs.errors import JobCancelled, JobFailed, JobTimedOut, LeaseLost
from domain.jobs.models import Job, Lane
from domain.jobs.time_limits import JOB_CANCELLED, JOB_TIMED_OUT

logger = logging.getLogger("depot.jobs")

CHUNK = 1024 * 1024
PROCESSING_CANCELLED = "PROCESSING_CANCELLED"
# The same work in the bulk lane, for reprocessing (domain.assets.reprocess): uploads go on
# in the interactive lane while a whole workspace is reprocessed.
REPROCESS_ITEM_JOB = "asset.reprocess.item"
# Bumped when processing learns something new, so assetsReprocess(olderThanVersion: true)
# finds the assets processed before (metadata.metadataVersion).
METADATA_VERSION = 2


@dataclass(frozen=True)
class _Outcome:
    content_type: str
    metadata: dict[str, Any]
    made: set[str]  # the presets whose renditions are stored


@registry.register(PROCESS_JOB, lane=Lane.INTERACTIVE)
def process_asset(ctx: JobContext) -> dict[str, Any]:
    asset = Asset.objects.select_related("workspace").filter(pk=ctx.parameters["asset_id"]).first()
    if asset is None:
        raise JobFailed("The asset no longer exists.", code="NOT_FOUND")
    if asset.state == AssetState.READY and not ctx.parameters.get("force"):
        return {"assetId": asset.pk, "alreadyReady": True}
    if asset.state == AssetState.DELETING:
        raise AssetBeingDeleted("The asset is being deleted.")
    failure: dict[str, str] = asset.failure or {}
    if asset.state == AssetState.FAILED and failure.get("code") in ORIGINAL_REMOVED:
        # The verdict removed the bytes: a retry or a reprocessing keeps it (it would read
        # UPLOAD_NOT_FOUND otherwise, and the reason would be lost). A run that died after
        # recording it may have left them: remove them now (nothing if they are gone).
        storage.delete_object(asset.storage_key)
        raise JobFailed(failure["message"], code=failure["code"])
    policy = media_settings_of(asset.workspace)
    digest = processing_digest(policy)
    before = asset.state
    _set_state(asset, AssetState.PROCESSING)
    try:
        sha256, outcome = _analyse(ctx, asset, policy, digest)
        failpoint("asset.process.after_rendition")
        stale = _finish(asset, sha256=sha256, outcome=outcome, digest=digest)
        failpoint("asset.process.after_finish")
        _remove_stale_objects(asset, stale)
    except (JobFailed, LeaseLost):
        raise  # the asset's failure is recorded (or it is being deleted, or another run's now)
    except JobCancelled:
        _give_back(asset, before, PROCESSING_CANCELLED, "Processing was cancelled.")
        raise
    except JobTimedOut:
        # The job's time limit (domain/jobs/time_limits.py): the runner ends it JOB_TIMED_OUT.
        _give_back(asset, before, JOB_TIMED_OUT, "Processing took longer than its time limit.")
        raise
    except Exception as error:
        # Anything else (the store failing, a bug): the asset must not stay PROCESSING with
        # no job working on it, where reprocessing would never pick it again.
        code, message = _unexpected(error)
        logger.exception("asset %s: processing failed (%s)", asset.pk, code)
        _give_back(asset, before, code, message)
        raise JobFailed(message, code=code) from error
    return {
        "assetId": asset.pk,
        "contentType": outcome.content_type,
        "sha256": sha256,
        "duplicateOf": outcome.metadata.get("duplicateOf"),
    }


registry.register(REPROCESS_ITEM_JOB, lane=Lane.BULK)(process_asset)


def _analyse(
    ctx: JobContext, asset: Asset, policy: MediaSettings, digest: str
) -> tuple[str, _Outcome]:
    """The bytes' hash, and the renditions stored for them."""
    try:
        with tempfile.TemporaryDirectory(prefix="depot-process-") as scratch:
            # The media library reads from a path; the name on disk is never the client's.
            path = scratch_path(scratch)
            sha256 = _download(ctx, asset, path)
            _check_checksum(asset, sha256)
            outcome = _reuse(ctx, asset, sha256, digest) or _process(ctx, asset, path, policy)
            return sha256, outcome
    except OSError as error:
        if not worker_disk.is_full(error):
            raise
        # The worker's own disk, not the upload: the original is intact in storage, so the
        # asset fails with a code that says so, and retrying the job processes it.
        _fail(asset, worker_disk.WORKER_DISK_FULL, worker_disk.FULL_MESSAGE)


def _unexpected(error: Exception) -> tuple[str, str]:
    """The code and message an asset's processing ends with after an unexpected error."""
    if isinstance(error, (BotoCoreError, ClientError)):
        return "STORAGE_ERROR", "The file store failed; the upload is intact: retry the job."
    return "PROCESSING_ERROR", "Processing failed unexpectedly; retry the job."


def _give_back(asset: Asset, before: str, code: str, message: str) -> None:
    """End an asset's processing that did not finish: a READY asset (reprocessed) stays READY
    with what it had, any other is FAILED with the code. Nothing if it is no longer PROCESSING
    (a deletion marked it, say).

    READY before: `before` says so, or the row does (_was_ready) when this run did not see it
    READY: a run that took over from a lost worker, or the on_abandon hook, with no run."""
    with transaction.atomic():
        row = (
            Asset.objects.select_for_update()
            .filter(pk=asset.pk)
            .values_list("state", "sha256", "failure")
        ).first()
        if row is None or row[0] != AssetState.PROCESSING:
            return
        _state, sha256, failure = row
        if before == AssetState.READY or _was_ready(sha256=sha256, failure=failure):
            asset.state = AssetState.READY
            asset.save(update_fields=["state", "updated_at"])
            events.record(asset.workspace_id, "asset.ready", asset_event_payload(asset))
            return
        asset.state = AssetState.FAILED
        asset.failure = {"code": code, "message": message}
        asset.save(update_fields=["state", "failure", "updated_at"])
        events.record(
            asset.workspace_id, "asset.failed", {**asset_event_payload(asset), "code": code}
        )


def _was_ready(*, sha256: str, failure: dict[str, Any] | None) -> bool:
    """Whether a PROCESSING asset was READY when its processing started (a reprocessing): only
    a processing that finished (_finish) sets its SHA-256, and only that clears its failure,
    which every FAILED asset has (_fail, _give_back), so a processed asset that has not failed
    since has both. Its original and renditions are still there: a reprocessing rewrites each
    rendition in place."""
    return bool(sha256) and failure is None


def _abandoned(job: Job, error: dict[str, Any]) -> None:
    """The runner gave the job up without its handler (its workers were lost too often, or its
    run was killed by its hard time limit, a cancel pending or not): the asset it left
    PROCESSING fails with the job's error, as the handler would have failed it, or, being
    reprocessed, is READY again with what it had."""
    asset = Asset.objects.filter(pk=job.parameters.get("asset_id")).first()
    if asset is None:
        return
    code, message = error["code"], error["message"]
    if code == JOB_CANCELLED:
        code, message = PROCESSING_CANCELLED, "Processing was cancelled."
    _give_back(asset, AssetState.PROCESSING, code, message)


registry.on_abandon(PROCESS_JOB, _abandoned)
registry.on_abandon(REPROCESS_ITEM_JOB, _abandoned)


def processing_digest(policy: MediaSettings) -> str:
    """What the results depend on besides the bytes: equal digests, equal results."""
    basis = {
        **policy.as_json(),
        "maxUploadBytes": None,  # decided before the bytes arrive; changes nothing here
        "maxPixels": settings.DEPOT_MAX_IMAGE_PIXELS,
        "metadataVersion": METADATA_VERSION,
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()


def _download(ctx: JobContext, asset: Asset, path: Path) -> str:
    """Stream the object to a local temporary file, hashing as it goes; never all in memory."""
    digest = hashlib.sha256()
    done = 0
    ctx.progress(0, asset.size, "downloading")
    try:
        with storage.open_object(asset.storage_key) as source, path.open("wb") as local:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                local.write(chunk)
                done += len(chunk)
                ctx.progress(done, asset.size, "downloading")
                ctx.check_cancelled()
    except FileNotFoundError:
        _fail(asset, "UPLOAD_NOT_FOUND", "The asset's file is no longer in storage.")
    if done != asset.size:
        _fail(asset, "UPLOAD_SIZE_MISMATCH", f"Stored {done} bytes, expected {asset.size}.")
    failpoint("asset.process.after_download")
    return digest.hexdigest()


def _check_checksum(asset: Asset, sha256: str) -> None:
    if asset.expected_sha256 and asset.expected_sha256 != sha256:
        # Not the bytes the client meant to send: remove them, so nobody ever downloads them.
        _fail(
            asset,
            UploadChecksumMismatch.code,
            f"The stored bytes have SHA-256 {sha256}, but {asset.expected_sha256} was announced.",
            remove_original=True,
        )


def _reuse(ctx: JobContext, asset: Asset, sha256: str, digest: str) -> _Outcome | None:
    """The same bytes, READY in the workspace and processed under the same settings: copy its
    results instead of processing them twice. None when there is nothing to copy from."""
    source = find_duplicate(
        workspace_id=asset.workspace_id, sha256=sha256, exclude=asset.pk, processed_with=digest
    )
    if source is None:
        return None
    ctx.progress(0, 1, "copying renditions")
    made: set[str] = set()
    # The presets' renditions only: on-demand ones are made when asked for (see
    # renditions_on_demand), and copying them would turn them into preset renditions.
    for rendition in Rendition.objects.filter(asset=source, on_demand=False):
        key = rendition_key(asset, rendition.preset, rendition.format)
        content_type = RENDITION_FORMATS.get(rendition.format, "application/octet-stream")
        object_removals.claim([key])
        try:
            storage.copy_object(rendition.storage_key, key, content_type)
        except FileNotFoundError:
            # The source is being deleted under us: process the bytes after all.
            ctx.log("duplicate %s lost its renditions; processing instead", source.pk)
            return None
        values = {
            "format": rendition.format,
            "width": rendition.width,
            "height": rendition.height,
            "size": rendition.size,
        }
        _rendition_row(asset, rendition.preset, key, values)
        made.add(rendition.preset)
        ctx.check_cancelled()
    metadata = {**source.metadata, "duplicateOf": global_id("Asset", source.pk)}
    return _Outcome(content_type=source.content_type, metadata=metadata, made=made)


def _process(ctx: JobContext, asset: Asset, path: Path, policy: MediaSettings) -> _Outcome:
    ctx.progress(0, 1, "analysing")
    try:
        analysis = media.analyse(
            path,
            declared_type=asset.declared_content_type,
            filename=asset.original_filename,
            max_pixels=settings.DEPOT_MAX_IMAGE_PIXELS,
            allow_gps=policy.allow_gps,
        )
    except media.MediaRejected as rejected:
        _reject(asset, rejected)
    if not policy.allows(analysis.kind):
        _fail(
            asset,
            KindNotAllowed.code,
            f"This workspace does not accept {analysis.kind.value} files "
            f"(the bytes are {analysis.content_type}).",
        )
    ctx.check_cancelled()
    made = _render(ctx, asset, analysis, policy)
    metadata = {
        **analysis.metadata,
        "kind": analysis.kind.value,
        "metadataVersion": METADATA_VERSION,
    }
    return _Outcome(content_type=analysis.content_type, metadata=metadata, made=made)


def _render(
    ctx: JobContext, asset: Asset, analysis: media.Analysis, policy: MediaSettings
) -> set[str]:
    """Make and store every preset's rendition (a file without a picture has none); returns
    the presets stored."""
    ctx.progress(0, 1, "rendering")
    try:
        rendered = media.render(analysis, policy.presets)
    except media.MediaRejected as rejected:
        _reject(asset, rejected)
    ctx.check_cancelled()
    for done, image in enumerate(rendered):
        ctx.progress(done, len(rendered), "storing renditions")
        key = rendition_key(asset, image.preset.name, image.format)
        object_removals.claim([key])
        storage.write_object(key, image.open(), image.content_type)
        _rendition_row(
            asset,
            image.preset.name,
            key,
            {
                "format": image.format,
                "width": image.width,
                "height": image.height,
                "size": image.size,
            },
        )
        ctx.check_cancelled()
    return {image.preset.name for image in rendered}


def rendition_key(asset: Asset, preset: str, format: str) -> str:
    # A fixed key per asset and preset: a second run overwrites rather than adds.
    return f"{asset.workspace_id}/{asset.pk}/renditions/{preset}.{format}"


def _rendition_row(asset: Asset, preset: str, key: str, values: dict[str, Any]) -> None:
    """The row of a rendition whose object is stored at `key` (claimed before it was written:
    object_removals.claim)."""
    try:
        with transaction.atomic():
            lock_unless_deleting(asset.pk)
            object_removals.release([key])
            previous = (
                Rendition.objects.filter(asset=asset, preset=preset)
                .values_list("storage_key", flat=True)
                .first()
            )
            Rendition.objects.update_or_create(
                asset=asset, preset=preset, defaults={**values, "storage_key": key}
            )
            if previous is not None and previous != key:
                # The preset changed its format: the object at the old key would be left.
                object_removals.schedule([previous])
    except AssetBeingDeleted:
        # Its deletion listed the asset's objects before this one had a row: the claim is due
        # now (the object goes unless a row names it: a reprocessed rendition's, which the
        # deletion removes).
        with transaction.atomic():
            object_removals.give_up([key])
        object_removals.remove([key])
        raise
    if previous is not None and previous != key:
        object_removals.remove([previous])


def _remove_stale_objects(asset: Asset, keys: list[str]) -> None:
    """The objects of the renditions no preset makes any more, once _finish has committed the
    removal of their rows and scheduled that of their objects (object_removals). In that
    order, a run stopped anywhere (a kill, its soft time limit, a crash) never leaves a row
    naming a missing object, which the asset, READY again, would serve as a broken link; one
    stopped after the commit, or a store that refuses, leaves the objects to the sweep."""
    try:
        object_removals.remove(keys)
    except JobTimedOut:
        raise
    except Exception:
        # The asset is READY and right; the sweep removes the objects later.
        logger.exception("asset %s: objects of stale renditions left to the sweep", asset.pk)


@transaction.atomic
def _set_state(asset: Asset, state: AssetState) -> None:
    lock_unless_deleting(asset.pk)
    asset.state = state
    asset.save(update_fields=["state", "updated_at"])
    events.record(asset.workspace_id, f"asset.{state.lower()}", asset_event_payload(asset))


@transaction.atomic
def _finish(
    asset: Asset,
    *,
    sha256: str,
    outcome: _Outcome,
    digest: str,
) -> list[str]:
    """The asset READY with its new results; returns the storage keys of the renditions no
    preset makes any more, whose rows this removes, their objects' removal scheduled with them
    (they go once it has committed: _remove_stale_objects, or else the sweep)."""
    lock_unless_deleting(asset.pk)
    # On-demand renditions stay: they depend on the bytes only, which processing never changes.
    stale = Rendition.objects.filter(asset=asset, on_demand=False).exclude(preset__in=outcome.made)
    stale_keys = list(stale.values_list("storage_key", flat=True))
    stale.delete()
    object_removals.schedule(stale_keys)
    asset.sha256 = sha256
    asset.content_type = outcome.content_type
    asset.metadata = outcome.metadata
    asset.processed_with = digest
    asset.failure = None
    asset.state = AssetState.READY
    asset.save(
        update_fields=[
            "sha256",
            "content_type",
            "metadata",
            "processed_with",
            "failure",
            "state",
            "updated_at",
        ]
    )
    events.record(asset.workspace_id, "asset.ready", asset_event_payload(asset))
    return stale_keys


def _reject(asset: Asset, rejected: media.MediaRejected) -> NoReturn:
    # Active content: a browser would run it; removed, so that no link to the store serves it.
    remove = rejected.code == ActiveContent.code
    _fail(asset, rejected.code.value, rejected.message, remove_original=remove)


def _fail(asset: Asset, code: str, message: str, *, remove_original: bool = False) -> NoReturn:
    with transaction.atomic():
        lock_unless_deleting(asset.pk)
        asset.state = AssetState.FAILED
        asset.failure = {"code": code, "message": message}
        asset.save(update_fields=["state", "failure", "updated_at"])
        events.record(
            asset.workspace_id, "asset.failed", {**asset_event_payload(asset), "code": code}
        )
    if remove_original:
        # Only once the reason is recorded: a worker that dies here leaves it, and the rerun
        # removes the bytes (ORIGINAL_REMOVED, in process_asset) instead of reading none.
        storage.delete_object(asset.storage_key)
    raise JobFailed(message, code=code)
