from __future__ import annotations

from enum import Enum

import strawberry

from domain.assets.policy import MediaSettings
from schema.scalars import BigInt


@strawberry.enum(name="MediaKind", description="What kind of file it is, judged from its bytes.")
class MediaKindEnum(Enum):
    IMAGE = strawberry.enum_value("image", description="A picture, raster or SVG.")
    PDF = strawberry.enum_value("pdf", description="A PDF document.")
    VIDEO = strawberry.enum_value("video", description="A video, with or without sound.")
    AUDIO = strawberry.enum_value("audio", description="Sound only.")
    TEXT = strawberry.enum_value("text", description="Plain text, CSV, JSON, XML, Markdown.")
    OTHER = strawberry.enum_value("other", description="Anything else (archives, office files).")


@strawberry.enum(name="RenditionFormat", description="The image format of a rendition.")
class RenditionFormatEnum(Enum):
    JPEG = strawberry.enum_value("jpeg", description="JPEG: photos, everywhere.")
    WEBP = strawberry.enum_value("webp", description="WebP: smaller, for browsers.")
    PNG = strawberry.enum_value("png", description="PNG: lossless, keeps transparency.")
    AVIF = strawberry.enum_value("avif", description="AVIF: smallest, for recent browsers.")


@strawberry.type(
    name="RenditionPreset",
    description="A rendition the workspace makes of every asset with a picture.",
)
class RenditionPresetType:
    name: str = strawberry.field(description="Its name, e.g. thumb-256; unique per workspace.")
    max_side: int = strawberry.field(
        description="The picture fits inside this many pixels square (never enlarged)."
    )
    format: RenditionFormatEnum = strawberry.field(description="The image format.")
    quality: int = strawberry.field(description="Encoder quality, 1 to 100 (not for PNG).")


@strawberry.type(
    name="MediaSettings",
    description="What a workspace accepts as uploads and how it processes them.",
)
class MediaSettingsType:
    max_upload_bytes: BigInt = strawberry.field(
        description="The largest upload, in bytes (never more than the deployment allows)."
    )
    allowed_kinds: list[MediaKindEnum] = strawberry.field(
        description="The kinds of file accepted; others fail with KIND_NOT_ALLOWED."
    )
    allow_gps: bool = strawberry.field(
        description="Whether GPS positions found in photos and videos are kept in metadata."
    )
    presets: list[RenditionPresetType] = strawberry.field(
        description="The renditions made of each asset with a picture."
    )

    @classmethod
    def from_domain(cls, settings: MediaSettings) -> MediaSettingsType:
        return cls(
            max_upload_bytes=BigInt(settings.max_upload_bytes),
            allowed_kinds=[MediaKindEnum(kind.value) for kind in settings.allowed_kinds],
            allow_gps=settings.allow_gps,
            presets=[
                RenditionPresetType(
                    name=preset.name,
                    max_side=preset.max_side,
                    format=RenditionFormatEnum(preset.format),
                    quality=preset.quality,
                )
                for preset in settings.presets
            ],
        )
