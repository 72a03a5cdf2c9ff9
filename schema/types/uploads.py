"""Types of the multipart upload flow (schema/mutations/uploads.py)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from domain.assets import multipart
from domain.assets.models import MultipartUpload
from domain.assets.multipart_store import PartTarget, StoredPart
from schema.context import Info
from schema.scalars import BigInt
from schema.types.assets import absolute_url


@strawberry.type(
    name="MultipartUpload",
    description="A file being uploaded in parts, each PUT straight to storage with its own URL.",
)
class MultipartUploadType:
    upload_id: str = strawberry.field(description="The object store's id of the upload.")
    part_size: BigInt = strawberry.field(
        description="Bytes in every part but the last, which has what is left."
    )
    part_count: int = strawberry.field(description="How many parts, numbered 1 to partCount.")
    expires_at: datetime = strawberry.field(
        description="If not completed by then, the upload is aborted and the asset deleted."
    )

    @classmethod
    def from_domain(cls, upload: MultipartUpload) -> MultipartUploadType:
        return cls(
            upload_id=upload.upload_id,
            part_size=BigInt(upload.part_size),
            part_count=upload.part_count,
            expires_at=multipart.expires_at(upload),
        )


@strawberry.type(description="Where to PUT one part of a multipart upload.")
class UploadPartTarget:
    part_number: int = strawberry.field(description="The part's number, from 1.")
    size: BigInt = strawberry.field(
        description="Send exactly this many bytes (the URL signs the Content-Length)."
    )
    url: str = strawberry.field(
        description="PUT the part's bytes here; the answer's ETag header names the stored part."
    )
    expires_at: datetime = strawberry.field(
        description="After this the URL is refused: ask for it again."
    )

    @classmethod
    def from_domain(cls, info: Info, target: PartTarget) -> UploadPartTarget:
        return cls(
            part_number=target.number,
            size=BigInt(target.size),
            url=absolute_url(info, target.url),
            expires_at=target.expires_at,
        )


@strawberry.type(description="A part the object store holds.")
class UploadedPart:
    part_number: int = strawberry.field(description="The part's number.")
    size: BigInt = strawberry.field(description="Its size in bytes.")
    etag: str = strawberry.field(description="Its ETag, as the PUT answered it.")

    @classmethod
    def from_domain(cls, part: StoredPart) -> UploadedPart:
        return cls(part_number=part.number, size=BigInt(part.size), etag=part.etag)
