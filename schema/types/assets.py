from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, cast

import strawberry
import strawberry_django
from django.db.models import Q
from strawberry import relay
from strawberry.scalars import JSON
from strawberry_django.relay import DjangoListConnection

from domain.assets import downloads, storage
from domain.assets.editing import MAX_TAG_LENGTH
from domain.assets.models import Asset, Collection, Rendition
from domain.assets.selectors import tag_lookup
from domain.common.text import column_limit
from schema.context import Info
from schema.errors import key_of
from schema.limits import text_limit
from schema.scalars import BigInt
from schema.types.fields import model_connection, model_field
from schema.types.scoping import DepotNode, in_memory, scoped_to_workspaces


@strawberry.enum(name="AssetState", description="Where an asset is in its life.")
class AssetStateEnum(Enum):
    AWAITING_UPLOAD = "AWAITING_UPLOAD"
    UPLOADED = "UPLOADED"
    PROCESSING = "PROCESSING"
    READY = "READY"
    FAILED = "FAILED"
    DELETING = "DELETING"


def absolute_url(info: Info, url: str) -> str:
    # Local-storage links are paths on this server; S3 links are already absolute.
    request = info.context.request
    if url.startswith("/") and hasattr(request, "build_absolute_uri"):
        return str(request.build_absolute_uri(url))
    return url


@strawberry_django.type(Rendition, name="Rendition", description="A derived image of an asset.")
class RenditionType(DepotNode):
    preset: str = model_field(description="The preset that made it.")
    format: str = model_field(description="Image format, e.g. jpeg.")
    width: int = model_field(description="Width in pixels.")
    height: int = model_field(description="Height in pixels.")
    size: BigInt = model_field(description="Size in bytes.")
    on_demand: bool = model_field(
        description="Made when asked for (assetRenditionRequest), not by a preset."
    )

    get_queryset = scoped_to_workspaces("asset__workspace_id", owner="asset")

    @strawberry_django.field(
        description="A download link that expires; the image is shown inline.",
        only=downloads.RENDITION_FIELDS,
    )
    @in_memory
    def url(self, info: Info) -> str:
        return absolute_url(info, downloads.rendition_url(self))  # type: ignore[arg-type]


@strawberry.type(description="Why processing failed.")
class AssetFailure:
    code: str = strawberry.field(description="A stable code, e.g. CORRUPT_FILE.")
    message: str = strawberry.field(description="A human-readable explanation.")


@strawberry_django.filter_type(Asset)
class AssetFilter:
    state: AssetStateEnum | None = strawberry_django.filter_field(description="Only this state.")
    # Each text at most what it could match: the longest value its column holds.
    content_type: str | None = strawberry_django.filter_field(
        description="Only this sniffed content type (e.g. image/png).",
        metadata=text_limit(column_limit(Asset, "content_type")),
    )

    @strawberry_django.filter_field(description="Only assets of this collection.")
    def collection_id(self, value: relay.GlobalID, prefix: str) -> Q:
        return Q(**{f"{prefix}collection_id": key_of(value, "Collection") or 0})

    @strawberry_django.filter_field(
        description="Only content types starting with this, e.g. image/.",
        metadata=text_limit(column_limit(Asset, "content_type")),
    )
    def content_type_prefix(self, value: str, prefix: str) -> Q:
        return Q(**{f"{prefix}content_type__startswith": value})

    @strawberry_django.filter_field(
        description="Only assets with this tag.", metadata=text_limit(MAX_TAG_LENGTH)
    )
    def tag(self, value: str, prefix: str) -> Q:
        return tag_lookup(value, prefix=prefix)

    @strawberry_django.filter_field(
        description="Only titles containing this text (any case).",
        metadata=text_limit(column_limit(Asset, "title")),
    )
    def title_contains(self, value: str, prefix: str) -> Q:
        return Q(**{f"{prefix}title__icontains": value})

    @strawberry_django.filter_field(description="Only assets of at least this many bytes.")
    def size_min(self, value: BigInt, prefix: str) -> Q:
        return Q(**{f"{prefix}size__gte": value})

    @strawberry_django.filter_field(description="Only assets of at most this many bytes.")
    def size_max(self, value: BigInt, prefix: str) -> Q:
        return Q(**{f"{prefix}size__lte": value})

    @strawberry_django.filter_field(description="Only assets created at or after this time.")
    def created_after(self, value: datetime, prefix: str) -> Q:
        return Q(**{f"{prefix}created_at__gte": value})

    @strawberry_django.filter_field(description="Only assets created before this time.")
    def created_before(self, value: datetime, prefix: str) -> Q:
        return Q(**{f"{prefix}created_at__lt": value})


@strawberry_django.order_type(Asset, description="How to order assets.")
class AssetOrder:
    created_at: strawberry.auto = strawberry_django.order_field(description="By creation time.")
    updated_at: strawberry.auto = strawberry_django.order_field(description="By last change.")
    title: strawberry.auto = strawberry_django.order_field(description="By title.")
    size: strawberry.auto = strawberry_django.order_field(description="By size.")


@strawberry_django.type(Asset, name="Asset", description="A file and what Depot learnt from it.")
class AssetType(DepotNode):
    title: str = model_field(description="A display title.")
    tags: list[str] = model_field(description="Free-form labels.")
    description: str = model_field(description="A longer description.")
    custom_metadata: JSON = model_field(description="Integrators' own fields, as a JSON object.")
    original_filename: str = model_field(description="The name it was uploaded as.")
    declared_content_type: str = model_field(description="The content type the client announced.")
    content_type: str = model_field(
        description="The content type sniffed from the bytes (empty until processed)."
    )
    size: BigInt = model_field(description="Size in bytes.")
    sha256: str = strawberry_django.field(description="SHA-256 of the bytes, hex.")
    metadata: JSON = model_field(description="What processing found.")
    created_at: datetime = model_field(description="When it was created.")
    updated_at: datetime = model_field(description="When it last changed.")
    collection: CollectionType = model_field(description="Its collection.")
    renditions: list[RenditionType] = model_field(
        description="Thumbnails and previews made from it."
    )
    # The column holds the enum's value, which the GraphQL enum serializes as it is.
    state: AssetStateEnum = model_field(description="Where the asset is in its life.")

    get_queryset = scoped_to_workspaces("workspace_id")

    @strawberry_django.field(description="Why processing failed, if it did.", only=["failure"])
    @in_memory
    def failure(self) -> AssetFailure | None:
        failure: dict[str, Any] | None = self.failure
        if not failure:
            return None
        return AssetFailure(code=failure["code"], message=failure["message"])

    @strawberry_django.field(
        description=(
            "A download link to the original that expires (once uploaded; null if processing "
            "removed it). Until READY it is served as an application/octet-stream attachment; "
            "then as its sniffed content type, inline only for raster images, PDF, audio and "
            "video (SVG, text and everything else as an attachment)."
        ),
        only=downloads.ORIGINAL_FIELDS,
    )
    @in_memory
    def download_url(self, info: Info) -> str | None:
        url = downloads.original_url(self)  # type: ignore[arg-type]
        return None if url is None else absolute_url(info, url)


@strawberry_django.filter_type(Collection)
class CollectionFilter:
    @strawberry_django.filter_field(
        description="Only names containing this text (any case).",
        metadata=text_limit(column_limit(Collection, "name")),
    )
    def name_contains(self, value: str, prefix: str) -> Q:
        return Q(**{f"{prefix}name__icontains": value})


@strawberry_django.order_type(Collection, description="How to order collections.")
class CollectionOrder:
    name: strawberry.auto = strawberry_django.order_field(description="By name.")
    created_at: strawberry.auto = strawberry_django.order_field(description="By creation time.")


@strawberry_django.type(Collection, name="Collection", description="A named group of assets.")
class CollectionType(DepotNode):
    name: str = model_field(description="The collection's name.")
    description: str = model_field(description="What the collection holds.")
    created_at: datetime = model_field(description="When it was created.")
    updated_at: datetime = model_field(description="When it last changed.")
    assets: DjangoListConnection[AssetType] = model_connection(
        description="Its assets, newest first unless ordered otherwise.",
        filters=AssetFilter,
        ordering=AssetOrder,
    )

    get_queryset = scoped_to_workspaces("workspace_id")

    @strawberry_django.field(description="The workspace it belongs to.", only=["workspace_id"])
    @in_memory
    def workspace_id(self) -> relay.GlobalID:
        return relay.GlobalID("Workspace", str(self.workspace_id))


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
        return cls(url=absolute_url(info, target.url), fields=fields, expires_at=target.expires_at)
