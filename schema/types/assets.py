from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, cast

import strawberry
import strawberry_django
from strawberry import relay
from strawberry.scalars import JSON
from strawberry_django.relay import DjangoListConnection

from domain.assets import storage
from domain.assets.models import Asset, AssetState, Collection, Rendition
from schema.context import Info
from schema.scalars import BigInt


@strawberry.enum(name="AssetState", description="Where an asset is in its life.")
class AssetStateEnum(Enum):
    AWAITING_UPLOAD = "AWAITING_UPLOAD"
    UPLOADED = "UPLOADED"
    PROCESSING = "PROCESSING"
    READY = "READY"
    FAILED = "FAILED"


def _absolute(info: Info, url: str) -> str:
    # Local-storage links are paths on this server; S3 links are already absolute.
    request = info.context.request
    if url.startswith("/") and hasattr(request, "build_absolute_uri"):
        return str(request.build_absolute_uri(url))
    return url


@strawberry_django.type(Rendition, name="Rendition", description="A derived image of an asset.")
class RenditionType(relay.Node):
    preset: str = strawberry_django.field(description="The preset that made it.")
    format: str = strawberry_django.field(description="Image format, e.g. jpeg.")
    width: int = strawberry_django.field(description="Width in pixels.")
    height: int = strawberry_django.field(description="Height in pixels.")
    size: BigInt = strawberry_django.field(description="Size in bytes.")

    @strawberry_django.field(description="A download link that expires.", only=["storage_key"])
    def url(self, info: Info) -> str:
        return _absolute(info, storage.download_url(self.storage_key))  # type: ignore[attr-defined]


@strawberry.type(description="Why processing failed.")
class AssetFailure:
    code: str = strawberry.field(description="A stable code, e.g. CORRUPT_FILE.")
    message: str = strawberry.field(description="A human-readable explanation.")


@strawberry_django.filter_type(Asset)
class AssetFilter:
    state: AssetStateEnum | None = strawberry_django.filter_field(description="Only this state.")


@strawberry_django.type(Asset, name="Asset", description="A file and what Depot learnt from it.")
class AssetType(relay.Node):
    title: str = strawberry_django.field(description="A display title.")
    tags: list[str] = strawberry_django.field(description="Free-form labels.")
    original_filename: str = strawberry_django.field(description="The name it was uploaded as.")
    declared_content_type: str = strawberry_django.field(
        description="The content type the client announced."
    )
    content_type: str = strawberry_django.field(
        description="The content type sniffed from the bytes (empty until processed)."
    )
    size: BigInt = strawberry_django.field(description="Size in bytes.")
    sha256: str = strawberry_django.field(description="SHA-256 of the bytes, hex.")
    metadata: JSON = strawberry_django.field(description="What processing found.")
    created_at: datetime = strawberry_django.field(description="When it was created.")
    updated_at: datetime = strawberry_django.field(description="When it last changed.")
    collection: CollectionType = strawberry_django.field(description="Its collection.")
    renditions: list[RenditionType] = strawberry_django.field(
        description="Thumbnails and previews made from it."
    )

    @strawberry_django.field(description="Where the asset is in its life.", only=["state"])
    def state(self) -> AssetStateEnum:
        return AssetStateEnum(self.state)

    @strawberry_django.field(description="Why processing failed, if it did.", only=["failure"])
    def failure(self) -> AssetFailure | None:
        failure: dict[str, Any] | None = self.failure
        if not failure:
            return None
        return AssetFailure(code=failure["code"], message=failure["message"])

    @strawberry_django.field(
        description="A download link to the original that expires (once uploaded).",
        only=["storage_key", "state"],
    )
    def download_url(self, info: Info) -> str | None:
        if self.state == AssetState.AWAITING_UPLOAD:
            return None
        return _absolute(info, storage.download_url(self.storage_key))  # type: ignore[attr-defined]


@strawberry_django.type(Collection, name="Collection", description="A named group of assets.")
class CollectionType(relay.Node):
    name: str = strawberry_django.field(description="The collection's name.")
    description: str = strawberry_django.field(description="What the collection holds.")
    created_at: datetime = strawberry_django.field(description="When it was created.")
    assets: DjangoListConnection[AssetType] = strawberry_django.connection(
        description="Its assets, newest first.", filters=AssetFilter
    )


@strawberry.type(
    description="How to post the file: a multipart form with these fields, then `file`."
)
class UploadTarget:
    url: str = strawberry.field(description="Where to POST the form.")
    fields: JSON = strawberry.field(description="Form fields to send before the file, as given.")
    expires_at: datetime = strawberry.field(description="After this the form is refused.")

    @classmethod
    def from_domain(cls, info: Info, target: storage.UploadTarget) -> UploadTarget:
        fields = cast(JSON, dict(target.fields))
        return cls(url=_absolute(info, target.url), fields=fields, expires_at=target.expires_at)
