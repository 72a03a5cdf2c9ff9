"""The asset.process job: hash and sniff the bytes, read image metadata, make the thumbnail.

Written to be run twice: a rerun after a worker died writes the same rendition at the same key
and updates the same row, so nothing is duplicated, and a READY asset is left alone.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.db import transaction
from PIL import Image, ImageOps, UnidentifiedImageError

from domain.assets import storage
from domain.assets.models import Asset, AssetState, Rendition
from domain.assets.services import PROCESS_JOB, asset_event_payload
from domain.assets.sniff import RASTER_IMAGE_TYPES, SNIFF_BYTES, sniff
from domain.common.failpoints import failpoint
from domain.jobs import events, registry
from domain.jobs.context import JobContext
from domain.jobs.errors import JobFailed
from domain.jobs.models import Lane

CHUNK = 1024 * 1024
# Pillow's own bomb check is a backstop; ours runs first, on the header, with our limit.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class Preset:
    name: str
    max_side: int
    format: str
    quality: int = 85


THUMBNAIL = Preset(name="thumb-256", max_side=256, format="jpeg")


@registry.register(PROCESS_JOB, lane=Lane.INTERACTIVE)
def process_asset(ctx: JobContext) -> dict[str, Any]:
    asset = Asset.objects.filter(pk=ctx.parameters["asset_id"]).first()
    if asset is None:
        raise JobFailed("The asset no longer exists.", code="NOT_FOUND")
    if asset.state == AssetState.READY:
        return {"assetId": asset.pk, "alreadyReady": True}
    if asset.state == AssetState.DELETING:
        raise JobFailed("The asset is being deleted.", code="ASSET_DELETED")
    _set_state(asset, AssetState.PROCESSING)
    with tempfile.TemporaryFile() as local:
        sha256, head = _download(ctx, asset, local)
        content_type = sniff(head)
        metadata: dict[str, Any] = {}
        if asset.declared_content_type.startswith("image/") or content_type in RASTER_IMAGE_TYPES:
            if content_type not in RASTER_IMAGE_TYPES:
                _fail(
                    asset,
                    "CONTENT_TYPE_MISMATCH",
                    f"Declared {asset.declared_content_type}, but the bytes are {content_type}.",
                )
            ctx.progress(0, 1, "rendering")
            metadata = _process_image(ctx, asset, local)
    _finish(asset, sha256=sha256, content_type=content_type, metadata=metadata)
    return {"assetId": asset.pk, "contentType": content_type, "sha256": sha256}


def _download(ctx: JobContext, asset: Asset, local: IO[bytes]) -> tuple[str, bytes]:
    """Stream the object to a local temporary file, hashing as it goes; never all in memory."""
    digest = hashlib.sha256()
    head = b""
    done = 0
    ctx.progress(0, asset.size, "downloading")
    with storage.open_object(asset.storage_key) as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            local.write(chunk)
            if len(head) < SNIFF_BYTES:
                head += chunk[: SNIFF_BYTES - len(head)]
            done += len(chunk)
            ctx.progress(done, asset.size, "downloading")
            ctx.check_cancelled()
    if done != asset.size:
        _fail(asset, "UPLOAD_SIZE_MISMATCH", f"Stored {done} bytes, expected {asset.size}.")
    failpoint("asset.process.after_download")
    local.seek(0)
    return digest.hexdigest(), head


def _process_image(ctx: JobContext, asset: Asset, local: IO[bytes]) -> dict[str, Any]:
    try:
        with Image.open(local) as image:
            width, height = image.size
            if width * height > settings.DEPOT_MAX_IMAGE_PIXELS:
                _fail(
                    asset,
                    "IMAGE_TOO_LARGE",
                    f"{width}x{height} pixels is over the limit of "
                    f"{settings.DEPOT_MAX_IMAGE_PIXELS} pixels.",
                )
            metadata = {
                "format": (image.format or "").lower(),
                "mode": image.mode,
                "animated": bool(getattr(image, "is_animated", False)),
                "orientation": image.getexif().get(0x0112, 1),
            }
            # JPEG can decode at 1/2, 1/4 or 1/8 scale: far less work for a small thumbnail.
            image.draft("RGB", (THUMBNAIL.max_side * 2, THUMBNAIL.max_side * 2))
            image.load()
            oriented = ImageOps.exif_transpose(image)
            # Dimensions as a viewer sees them: orientations 5 to 8 turn the picture a quarter.
            quarter_turn = metadata["orientation"] in (5, 6, 7, 8)
            metadata["width"], metadata["height"] = (
                (height, width) if quarter_turn else (width, height)
            )
            ctx.check_cancelled()
            _store_rendition(asset, oriented, THUMBNAIL)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        _fail(asset, "CORRUPT_FILE", f"The image could not be decoded: {error}")
    failpoint("asset.process.after_rendition")
    ctx.progress(1, 1, "rendering")
    return metadata


def _store_rendition(asset: Asset, image: Image.Image, preset: Preset) -> None:
    rendered = image.copy()
    rendered.thumbnail((preset.max_side, preset.max_side), Image.Resampling.LANCZOS)
    if rendered.mode in ("RGBA", "LA", "P"):
        rendered = rendered.convert("RGBA")
        background = Image.new("RGB", rendered.size, (255, 255, 255))
        background.paste(rendered, mask=rendered.getchannel("A"))
        rendered = background
    elif rendered.mode != "RGB":
        rendered = rendered.convert("RGB")
    buffer = io.BytesIO()
    rendered.save(buffer, format=preset.format.upper(), quality=preset.quality, optimize=True)
    size = buffer.tell()
    buffer.seek(0)
    # A fixed key per asset and preset: a second run overwrites rather than adds.
    key = f"{asset.workspace_id}/{asset.pk}/renditions/{preset.name}.{preset.format}"
    storage.write_object(key, buffer, f"image/{preset.format}")
    Rendition.objects.update_or_create(
        asset=asset,
        preset=preset.name,
        defaults={
            "format": preset.format,
            "width": rendered.size[0],
            "height": rendered.size[1],
            "size": size,
            "storage_key": key,
        },
    )


@transaction.atomic
def _set_state(asset: Asset, state: AssetState) -> None:
    asset.state = state
    asset.save(update_fields=["state", "updated_at"])
    events.record(asset.workspace_id, f"asset.{state.lower()}", asset_event_payload(asset))


@transaction.atomic
def _finish(asset: Asset, *, sha256: str, content_type: str, metadata: dict[str, Any]) -> None:
    asset.sha256 = sha256
    asset.content_type = content_type
    asset.metadata = metadata
    asset.failure = None
    asset.state = AssetState.READY
    asset.save(
        update_fields=["sha256", "content_type", "metadata", "failure", "state", "updated_at"]
    )
    events.record(asset.workspace_id, "asset.ready", asset_event_payload(asset))


def _fail(asset: Asset, code: str, message: str) -> None:
    with transaction.atomic():
        asset.state = AssetState.FAILED
        asset.failure = {"code": code, "message": message}
        asset.save(update_fields=["state", "failure", "updated_at"])
        events.record(
            asset.workspace_id, "asset.failed", {**asset_event_payload(asset), "code": code}
        )
    raise JobFailed(message, code=code)
