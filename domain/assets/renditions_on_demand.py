"""Renditions on demand: a client asks for an asset at a width and in a format; it is made
once, by the asset.rendition job, and stored like a preset's rendition.

Widths come from a fixed list and formats from the media library's, so one asset can have at
most len(ALLOWED_WIDTHS) x 4 of them. Asking again returns the stored rendition; asking while
it is being made returns the same job (its idempotency key names the asset and the spec, and
the unique (asset, preset) constraint holds if two runs ever raced). Processing again leaves
these renditions alone: they depend on the bytes only, which never change.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from PIL import Image

from domain.accounts.actor import Actor
from domain.accounts.models import Permission
from domain.accounts.selectors import require_permission
from domain.assets import media, object_removals, storage, worker_disk
from domain.assets.deletion import AssetBeingDeleted, lock_unless_deleting
from domain.assets.errors import (
    AssetNotReady,
    InvalidAssetInput,
    RenditionNotSupported,
    UploadMissing,
)
from domain.assets.media.analysis import PARSER_ERRORS
from domain.assets.media.model import RENDITION_FORMATS, Kind, Picture, Preset, RenderedImage
from domain.assets.media.renditions import encode
from domain.assets.models import Asset, AssetState, Rendition
from domain.assets.policy import kind_of, media_settings_of
from domain.assets.worker_disk import scratch_path
from domain.common.ids import global_id
from domain.jobs import events, registry
from domain.jobs.context import JobContext
from domain.jobs.errors import JobFailed
from domain.jobs.models import Job, Lane
from domain.jobs.services import job_create

RENDITION_JOB = "asset.rendition"
# Common layout widths and their doubles; a list rather than a range, so that nobody can fill
# storage with one rendition per pixel.
ALLOWED_WIDTHS = (64, 128, 256, 320, 480, 640, 800, 1024, 1280, 1600, 1920, 2560)
QUALITY = {"jpeg": 85, "webp": 80, "avif": 60, "png": 100}
# Kinds whose files may have a picture (an image, a PDF's first page, a video frame).
VISUAL_KINDS = {Kind.IMAGE, Kind.PDF, Kind.VIDEO}
# Depot draws no SVG (see media/svg.py): a browser does better from the original.
UNRENDERED_TYPES = {"image/svg+xml"}


@dataclass(frozen=True)
class RenditionSpec:
    width: int
    format: str

    @property
    def name(self) -> str:
        # Stored as the rendition's preset. A preset's name cannot hold a dot, so the two
        # never collide under the (asset, preset) constraint.
        return f"w{self.width}.{self.format}"

    def key(self, asset: Asset) -> str:
        return f"{asset.workspace_id}/{asset.pk}/renditions/on-demand/{self.name}"


def rendition_spec(*, width: int, format: str) -> RenditionSpec:
    if width not in ALLOWED_WIDTHS:
        raise InvalidAssetInput(
            f"The width is one of {', '.join(str(w) for w in ALLOWED_WIDTHS)}.", path=["width"]
        )
    if format not in RENDITION_FORMATS:
        raise InvalidAssetInput(
            f"The format is one of {', '.join(RENDITION_FORMATS)}.", path=["format"]
        )
    return RenditionSpec(width=width, format=format)


@dataclass(frozen=True)
class RenditionRequested:
    # The stored rendition, or else the job that makes it.
    rendition: Rendition | None
    job: Job | None


def asset_rendition_request(
    *, asset: Asset, width: int, format: str, actor: Actor
) -> RenditionRequested:
    """The rendition if it is stored; otherwise the one job that makes it."""
    require_permission(actor=actor, workspace_id=asset.workspace_id, needed=Permission.WRITE)
    spec = rendition_spec(width=width, format=format)
    stored = _stored(asset, spec)
    if stored is not None and asset.state != AssetState.DELETING:
        return RenditionRequested(rendition=stored, job=None)
    _check_renderable(asset)
    key = f"{RENDITION_JOB}:{asset.pk}:{spec.name}"
    with transaction.atomic():
        previous = (
            Job.objects.select_for_update()
            .filter(workspace_id=asset.workspace_id, idempotency_key=key)
            .first()
        )
        if previous is not None and previous.is_final:
            stored = _stored(asset, spec)
            if stored is not None:
                return RenditionRequested(rendition=stored, job=None)
            # It ended without storing the rendition (failed or cancelled): free its key so
            # that asking again tries again; the old job stays in the ledger as it ended.
            Job.objects.filter(pk=previous.pk).update(idempotency_key=None)
        job = job_create(
            workspace_id=asset.workspace_id,
            kind=RENDITION_JOB,
            parameters={"asset_id": asset.pk, "width": spec.width, "format": spec.format},
            created_by_id=actor.user.pk if actor.user else None,
            idempotency_key=key,
        )
    return RenditionRequested(rendition=None, job=job)


def _stored(asset: Asset, spec: RenditionSpec) -> Rendition | None:
    return Rendition.objects.filter(asset=asset, preset=spec.name).first()


def _check_renderable(asset: Asset) -> None:
    if asset.state != AssetState.READY:
        raise AssetNotReady(
            f"The asset is {asset.state.lower()}; renditions are made of READY assets.",
            path=["assetId"],
        )
    kind = asset.metadata.get("kind") or kind_of(asset.content_type).value
    if kind not in VISUAL_KINDS or asset.content_type in UNRENDERED_TYPES:
        raise RenditionNotSupported(
            f"There is no picture to make a rendition of in this {kind} file.",
            path=["assetId"],
        )


# One picture at one width: minutes would mean it is stuck, and a client is waiting for it.
@registry.register(RENDITION_JOB, lane=Lane.INTERACTIVE, time_limit=120)
def make_rendition(ctx: JobContext) -> dict[str, Any]:
    asset = Asset.objects.select_related("workspace").filter(pk=ctx.parameters["asset_id"]).first()
    if asset is None:
        raise JobFailed("The asset no longer exists.", code="NOT_FOUND")
    spec = RenditionSpec(width=ctx.parameters["width"], format=ctx.parameters["format"])
    stored = _stored(asset, spec)
    if stored is not None:
        return _result(stored, already_made=True)
    if asset.state != AssetState.READY:
        raise JobFailed(f"The asset is {asset.state.lower()}.", code=AssetNotReady.code)
    key = spec.key(asset)
    try:
        image = _made_from_original(ctx, asset, spec)
        ctx.check_cancelled()
        # A fixed key: a second run overwrites the object and updates the same row. Claimed
        # first: a run stopped before its row leaves the object to the sweep (an hour on).
        object_removals.claim([key])
        storage.write_object(key, image.open(), image.content_type)
    except OSError as error:
        if not worker_disk.is_full(error):
            raise
        # The scratch copy (TemporaryDirectory) and a local store's partial file (write_object)
        # are gone by now; the original was only read.
        raise JobFailed(
            "The worker ran out of local disk space; the original is intact: ask again.",
            code=worker_disk.WORKER_DISK_FULL,
        ) from error
    try:
        rendition = _record(asset, spec, key, image)
    except AssetBeingDeleted:
        # Its deletion listed the asset's objects before this one had a row: the claim is due
        # now, and the object goes unless a row names it.
        with transaction.atomic():
            object_removals.give_up([key])
        object_removals.remove([key])
        raise
    return _result(rendition, already_made=False)


def _made_from_original(ctx: JobContext, asset: Asset, spec: RenditionSpec) -> RenderedImage:
    """The rendition, made from a scratch copy of the original (removed before returning)."""
    with tempfile.TemporaryDirectory(prefix="depot-rendition-") as scratch:
        # The media library reads from a path; the name on disk is never the client's.
        path = scratch_path(scratch)
        ctx.progress(0, 1, "downloading")
        try:
            with path.open("wb") as local:
                storage.copy_to(asset.storage_key, local)
        except FileNotFoundError:
            raise JobFailed(
                "The asset's file is not in storage.", code=UploadMissing.code
            ) from None
        ctx.check_cancelled()
        ctx.progress(0, 1, "rendering")
        return _render(asset, path, spec)


def _render(asset: Asset, path: Path, spec: RenditionSpec) -> RenderedImage:
    try:
        analysis = media.analyse(
            path,
            declared_type=asset.content_type or asset.declared_content_type,
            filename=asset.original_filename,
            max_pixels=settings.DEPOT_MAX_IMAGE_PIXELS,
            allow_gps=media_settings_of(asset.workspace).allow_gps,
        )
        if analysis.picture is None:
            raise JobFailed("There is no picture in this file.", code=RenditionNotSupported.code)
        return render_width(analysis.picture, spec)
    except media.MediaRejected as rejected:
        raise JobFailed(rejected.message, code=rejected.code.value) from rejected
    except PARSER_ERRORS as error:
        raise JobFailed(f"The picture cannot be decoded: {error}", code="CORRUPT_FILE") from error


def render_width(picture: Picture, spec: RenditionSpec) -> RenderedImage:
    """The picture `spec.width` pixels wide (never enlarged), its shape kept."""
    width = min(spec.width, picture.width)
    height = max(1, round(picture.height * width / picture.width))
    image = picture.load(max(width, height))
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=2.0)
    # encode() reads the format and quality of a preset; max_side is only a label here.
    preset = Preset(
        name=spec.name,
        max_side=min(8192, max(16, width, height)),
        format=spec.format,
        quality=QUALITY[spec.format],
    )
    return RenderedImage(preset=preset, width=width, height=height, data=encode(image, preset))


@transaction.atomic
def _record(asset: Asset, spec: RenditionSpec, key: str, image: RenderedImage) -> Rendition:
    lock_unless_deleting(asset.pk)
    object_removals.release([key])
    rendition, _ = Rendition.objects.update_or_create(
        asset=asset,
        preset=spec.name,
        defaults={
            "format": spec.format,
            "width": image.width,
            "height": image.height,
            "size": image.size,
            "storage_key": key,
            "on_demand": True,
        },
    )
    events.record(
        asset.workspace_id,
        "asset.rendition_created",
        {
            "assetId": global_id("Asset", asset.pk),
            "renditionId": global_id("Rendition", rendition.pk),
            "preset": rendition.preset,
        },
    )
    return rendition


def _result(rendition: Rendition, *, already_made: bool) -> dict[str, Any]:
    return {
        "assetId": global_id("Asset", rendition.asset_id),
        "renditionId": global_id("Rendition", rendition.pk),
        "preset": rendition.preset,
        "alreadyMade": already_made,
    }
