"""What the multipart stores (multipart_s3, multipart_local) hand back, and how they fail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class UploadGone(Exception):
    """The store has no such multipart upload: aborted, completed, or never made."""


class PartChanged(Exception):
    """A part was stored again while the upload was being completed."""


@dataclass(frozen=True)
class StoredPart:
    """A stored copy of a part. S3 keeps the last upload of each part number; SeaweedFS lists
    every upload of it until the upload is completed, so a number may come more than once."""

    number: int
    size: int
    etag: str  # quoted, as S3 gives it
    modified: datetime | None = None


@dataclass(frozen=True)
class PartTarget:
    """Where to PUT one part: exactly `size` bytes, before `expires_at`."""

    number: int
    size: int
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class PendingUpload:
    key: str
    upload_id: str
    initiated: datetime
