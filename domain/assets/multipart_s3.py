"""Multipart uploads in S3 (services mode), behind multipart_store.

The internal client creates, lists, completes and aborts; part URLs are presigned with the
public client and pin each part's exact size (Content-Length is a signed header), so the bytes
go from the client straight to the store.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from django.conf import settings

from domain.assets import storage
from domain.assets.multipart_types import PartChanged, PendingUpload, StoredPart, UploadGone

# Depot's own keys (<workspace>/<asset>/<uuid>): the sweep never touches another's uploads in a
# shared bucket.
_DEPOT_KEY = re.compile(r"\d+/\d+/[0-9a-f]{32}")


def _error_code(error: Exception) -> str:
    # botocore's ClientError carries the store's code; boto3 is imported lazily (storage.py),
    # so callers catch Exception and re-raise what this does not name.
    response: Any = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def create(*, key: str, content_type: str) -> str:
    started = storage.internal_s3_client().create_multipart_upload(
        Bucket=settings.S3_BUCKET, Key=key, ContentType=content_type
    )
    return str(started["UploadId"])


def part_url(*, key: str, upload_id: str, number: int, size: int, ttl: int) -> str:
    return str(
        storage.public_s3_client().generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": settings.S3_BUCKET,
                "Key": key,
                "UploadId": upload_id,
                "PartNumber": number,
                "ContentLength": size,
            },
            ExpiresIn=ttl,
        )
    )


def list_parts(*, key: str, upload_id: str) -> list[StoredPart]:
    return list(_parts(key, upload_id))


def _parts(key: str, upload_id: str) -> Iterator[StoredPart]:
    client = storage.internal_s3_client()
    marker = 0
    while True:
        try:
            page = client.list_parts(
                Bucket=settings.S3_BUCKET, Key=key, UploadId=upload_id, PartNumberMarker=marker
            )
        except Exception as error:
            if _error_code(error) == "NoSuchUpload":
                raise UploadGone(upload_id) from error
            raise
        for part in page.get("Parts", []):
            yield StoredPart(
                number=part["PartNumber"],
                size=part["Size"],
                etag=part["ETag"],
                modified=part.get("LastModified"),
            )
        if not page.get("IsTruncated"):
            return
        marker = int(page["NextPartNumberMarker"])


def complete(*, key: str, upload_id: str, parts: Sequence[StoredPart]) -> None:
    try:
        storage.internal_s3_client().complete_multipart_upload(
            Bucket=settings.S3_BUCKET,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": part.number, "ETag": part.etag} for part in parts]
            },
        )
    except Exception as error:
        code = _error_code(error)
        if code == "NoSuchUpload":
            raise UploadGone(upload_id) from error
        if code == "InvalidPart":
            raise PartChanged(upload_id) from error
        raise


def abort(*, key: str, upload_id: str) -> None:
    try:
        storage.internal_s3_client().abort_multipart_upload(
            Bucket=settings.S3_BUCKET, Key=key, UploadId=upload_id
        )
    except Exception as error:
        if _error_code(error) != "NoSuchUpload":
            raise


def pending() -> Iterator[PendingUpload]:
    client = storage.internal_s3_client()
    markers: dict[str, str] = {}
    while True:
        page = client.list_multipart_uploads(Bucket=settings.S3_BUCKET, **markers)
        for upload in page.get("Uploads", []):
            if _DEPOT_KEY.fullmatch(upload["Key"]):
                yield PendingUpload(
                    key=upload["Key"], upload_id=upload["UploadId"], initiated=upload["Initiated"]
                )
        if not page.get("IsTruncated"):
            return
        markers = {
            "KeyMarker": page["NextKeyMarker"],
            "UploadIdMarker": page["NextUploadIdMarker"],
        }
