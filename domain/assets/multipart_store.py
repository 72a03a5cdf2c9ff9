"""Multipart uploads in the object store: one facade over S3's calls (multipart_s3) and their
stand-ins on local files in embedded mode (multipart_local), chosen by the storage settings.

The values both hand back, and the ways they fail, are in multipart_types.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings
from django.utils import timezone

from domain.assets import multipart_local, multipart_s3, storage
from domain.assets.multipart_local import (
    LOCAL_AREA,
    LocalPart,
    read_part_token,
    store_local_part,
)
from domain.assets.multipart_types import (
    PartChanged,
    PartTarget,
    PendingUpload,
    StoredPart,
    UploadGone,
)

__all__ = [
    "LOCAL_AREA",
    "LocalPart",
    "PartChanged",
    "PartTarget",
    "PendingUpload",
    "StoredPart",
    "UploadGone",
    "abort",
    "complete",
    "create",
    "list_parts",
    "pending_uploads",
    "presign_parts",
    "read_part_token",
    "store_local_part",
]


class _Store(Protocol):
    """What multipart_s3 and multipart_local each provide."""

    def create(self, *, key: str, content_type: str) -> str: ...
    def part_url(self, *, key: str, upload_id: str, number: int, size: int, ttl: int) -> str: ...
    def list_parts(self, *, key: str, upload_id: str) -> list[StoredPart]: ...
    def complete(self, *, key: str, upload_id: str, parts: Sequence[StoredPart]) -> None: ...
    def abort(self, *, key: str, upload_id: str) -> None: ...
    def pending(self) -> Iterator[PendingUpload]: ...


def _store() -> _Store:
    return multipart_s3 if storage.is_s3() else multipart_local


def create(*, key: str, content_type: str) -> str:
    """Start a multipart upload of `key`; returns its upload id."""
    return _store().create(key=key, content_type=content_type)


def presign_parts(
    *, key: str, upload_id: str, parts: Sequence[tuple[int, int]]
) -> list[PartTarget]:
    """A PUT URL for each (part number, exact size in bytes)."""
    ttl = settings.DEPOT_UPLOAD_URL_TTL_SECONDS
    expires_at = timezone.now() + timedelta(seconds=ttl)
    store = _store()
    return [
        PartTarget(
            number=number,
            size=size,
            url=store.part_url(key=key, upload_id=upload_id, number=number, size=size, ttl=ttl),
            expires_at=expires_at,
        )
        for number, size in parts
    ]


def list_parts(*, key: str, upload_id: str) -> list[StoredPart]:
    """The parts stored so far (maybe several copies of a number, see StoredPart). UploadGone
    if there is no such upload."""
    return _store().list_parts(key=key, upload_id=upload_id)


def complete(*, key: str, upload_id: str, parts: Sequence[StoredPart]) -> None:
    """Join these parts, in this order, into the object at `key`. UploadGone if there is no
    such upload (any more); PartChanged if a part is not the one listed."""
    _store().complete(key=key, upload_id=upload_id, parts=parts)


def abort(*, key: str, upload_id: str) -> None:
    """Drop the upload and its parts; nothing happens when it is already gone."""
    _store().abort(key=key, upload_id=upload_id)


def pending_uploads(*, initiated_before: datetime) -> list[PendingUpload]:
    """Depot's multipart uploads in the store that were started before this time."""
    return [upload for upload in _store().pending() if upload.initiated < initiated_before]
