"""Multipart uploads in the object store: S3's calls, or their stand-ins on local files.

S3 (services mode): the internal client creates, lists, completes and aborts; part URLs are
presigned with the public client and pin each part's exact size (Content-Length is a signed
header), so the bytes go from the client straight to the store.

Local files (embedded mode): an upload is a directory `_multipart/<upload id>/` under the media
root, with `upload.json` (its key and start time) and one file per part named
`<part number>.<md5>`, the md5 being the part's ETag as on S3. Part URLs are signed Depot URLs
(project.files.local_upload_part). Completing concatenates the parts in order into the object,
streamed, then removes the directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from domain.assets import storage

PART_SALT = "depot.upload-part"
CHUNK = 1024 * 1024
LOCAL_AREA = "_multipart"
_LOCAL_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_LOCAL_PART = re.compile(r"(\d{5})\.([0-9a-f]{32})")
# Depot's own keys (<workspace>/<asset>/<uuid>): the sweep never touches another's uploads in a
# shared bucket.
_DEPOT_KEY = re.compile(r"\d+/\d+/[0-9a-f]{32}")


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


@dataclass(frozen=True)
class LocalPart:
    """What a signed local part URL allows: `size` bytes as part `number` of an upload."""

    key: str
    upload_id: str
    number: int
    size: int


def create(*, key: str, content_type: str) -> str:
    """Start a multipart upload of `key`; returns its upload id."""
    if storage.is_s3():
        started = storage.internal_s3_client().create_multipart_upload(
            Bucket=settings.S3_BUCKET, Key=key, ContentType=content_type
        )
        return str(started["UploadId"])
    upload_id = uuid.uuid4().hex
    directory = _local_dir(upload_id)
    directory.mkdir(parents=True)
    (directory / "upload.json").write_text(
        json.dumps({"key": key, "initiated": timezone.now().isoformat()})
    )
    return upload_id


def presign_parts(
    *, key: str, upload_id: str, parts: Sequence[tuple[int, int]]
) -> list[PartTarget]:
    """A PUT URL for each (part number, exact size in bytes)."""
    ttl = settings.DEPOT_UPLOAD_URL_TTL_SECONDS
    expires_at = timezone.now() + timedelta(seconds=ttl)
    if storage.is_s3():
        client = storage.public_s3_client()
        return [
            PartTarget(
                number=number,
                size=size,
                url=str(
                    client.generate_presigned_url(
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
                ),
                expires_at=expires_at,
            )
            for number, size in parts
        ]
    return [
        PartTarget(
            number=number,
            size=size,
            url=reverse(
                "local-upload-part",
                args=[
                    signing.dumps(
                        {"k": key, "u": upload_id, "n": number, "s": size}, salt=PART_SALT
                    )
                ],
            ),
            expires_at=expires_at,
        )
        for number, size in parts
    ]


def list_parts(*, key: str, upload_id: str) -> list[StoredPart]:
    """The parts stored so far (maybe several copies of a number, see StoredPart). UploadGone
    if there is no such upload."""
    if storage.is_s3():
        return list(_s3_parts(key, upload_id))
    return [part for part, _ in _local_parts(upload_id)]


def complete(*, key: str, upload_id: str, parts: Sequence[StoredPart]) -> None:
    """Join these parts, in this order, into the object at `key`. UploadGone if there is no
    such upload (any more); PartChanged if a part is not the one listed."""
    if storage.is_s3():
        _s3_complete(key, upload_id, parts)
    else:
        _local_complete(key, upload_id, parts)


def abort(*, key: str, upload_id: str) -> None:
    """Drop the upload and its parts; nothing happens when it is already gone."""
    if storage.is_s3():
        try:
            storage.internal_s3_client().abort_multipart_upload(
                Bucket=settings.S3_BUCKET, Key=key, UploadId=upload_id
            )
        except Exception as error:
            if _error_code(error) != "NoSuchUpload":
                raise
        return
    try:
        directory = _local_dir(upload_id)
    except UploadGone:
        return  # not an id of ours: there is nothing of it to remove
    shutil.rmtree(directory, ignore_errors=True)


def pending_uploads(*, initiated_before: datetime) -> list[PendingUpload]:
    """Depot's multipart uploads in the store that were started before this time."""
    found = _s3_pending() if storage.is_s3() else _local_pending()
    return [upload for upload in found if upload.initiated < initiated_before]


# --- S3 ---------------------------------------------------------------------------------------


def _error_code(error: Exception) -> str:
    # botocore's ClientError carries the store's code; boto3 is imported lazily (storage.py),
    # so callers catch Exception and re-raise what this does not name.
    response: Any = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _s3_parts(key: str, upload_id: str) -> Iterator[StoredPart]:
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


def _s3_complete(key: str, upload_id: str, parts: Sequence[StoredPart]) -> None:
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


def _s3_pending() -> Iterator[PendingUpload]:
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


# --- local files ------------------------------------------------------------------------------


def read_part_token(token: str) -> LocalPart:
    """What a local part URL allows, if its signature holds and it has not expired."""
    payload = signing.loads(token, salt=PART_SALT, max_age=settings.DEPOT_UPLOAD_URL_TTL_SECONDS)
    return LocalPart(
        key=payload["k"], upload_id=payload["u"], number=payload["n"], size=payload["s"]
    )


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def store_local_part(part: LocalPart, source: Readable) -> str:
    """Store exactly `part.size` bytes read from `source` as the part; returns its ETag.
    UploadGone if the upload is not there (any more); ValueError if the body is short."""
    directory = _local_dir(part.upload_id)
    if not (directory / "upload.json").exists():
        raise UploadGone(part.upload_id)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".part-")
    except FileNotFoundError:
        raise UploadGone(part.upload_id) from None
    try:
        with os.fdopen(handle, "wb") as target:
            remaining = part.size
            while remaining and (chunk := source.read(min(CHUNK, remaining))):
                digest.update(chunk)
                target.write(chunk)
                remaining -= len(chunk)
        if remaining:
            raise ValueError(f"the body ended {remaining} bytes early")
        final = directory / f"{part.number:05d}.{digest.hexdigest()}"
        os.replace(temporary, final)
    except FileNotFoundError:
        raise UploadGone(part.upload_id) from None  # aborted meanwhile
    finally:
        Path(temporary).unlink(missing_ok=True)
    _drop_older_copies(directory, part.number, final)
    return f'"{digest.hexdigest()}"'


def _local_dir(upload_id: str) -> Path:
    if not _LOCAL_UPLOAD_ID.fullmatch(upload_id):
        raise UploadGone(upload_id)
    return storage.local_path(f"{LOCAL_AREA}/{upload_id}")


def _age(path: Path) -> tuple[int, str]:
    # The newest copy of a part wins; the name settles a tie, the same way for every reader.
    return path.stat().st_mtime_ns, path.name


def _drop_older_copies(directory: Path, number: int, kept: Path) -> None:
    """A part stored again leaves its earlier copy: remove the copies older than ours (never a
    newer one, which a concurrent PUT of the same part may just have stored)."""
    try:
        ours = _age(kept)
    except FileNotFoundError:
        return  # a newer copy replaced ours, or the upload went: its writer cleans up
    for sibling in directory.glob(f"{number:05d}.*"):
        try:
            if sibling != kept and _age(sibling) < ours:
                sibling.unlink()
        except FileNotFoundError:
            continue


def _local_parts(upload_id: str) -> list[tuple[StoredPart, Path]]:
    directory = _local_dir(upload_id)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        raise UploadGone(upload_id) from None
    newest: dict[int, tuple[tuple[int, str], StoredPart, Path]] = {}
    for name in names:
        match = _LOCAL_PART.fullmatch(name)
        if match is None:
            continue
        path = directory / name
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        number = int(match.group(1))
        age = (stat.st_mtime_ns, name)
        part = StoredPart(
            number=number,
            size=stat.st_size,
            etag=f'"{match.group(2)}"',
            modified=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        )
        if number not in newest or newest[number][0] < age:
            newest[number] = (age, part, path)
    return [(part, path) for _, part, path in (newest[n] for n in sorted(newest))]


def _local_complete(key: str, upload_id: str, parts: Sequence[StoredPart]) -> None:
    stored = {part.number: (part, path) for part, path in _local_parts(upload_id)}
    target = storage.local_path(key)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".assemble-")
    try:
        with os.fdopen(handle, "wb") as joined:
            for part in parts:
                found = stored.get(part.number)
                if found is None or found[0].etag != part.etag:
                    raise PartChanged(f"part {part.number}")
                try:
                    with found[1].open("rb") as source:
                        shutil.copyfileobj(source, joined, CHUNK)
                except FileNotFoundError:
                    raise PartChanged(f"part {part.number}") from None
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)
    shutil.rmtree(_local_dir(upload_id), ignore_errors=True)


def _local_pending() -> Iterator[PendingUpload]:
    area = storage.local_path(LOCAL_AREA)
    if not area.is_dir():
        return
    for directory in area.iterdir():
        if not _LOCAL_UPLOAD_ID.fullmatch(directory.name):
            continue
        try:
            described = json.loads((directory / "upload.json").read_text())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            # Not an upload, or one being made or removed this instant: judge it by its age.
            described = {"key": "", "initiated": _mtime(directory).isoformat()}
        yield PendingUpload(
            key=described["key"],
            upload_id=directory.name,
            initiated=datetime.fromisoformat(described["initiated"]),
        )


def _mtime(path: Path) -> datetime:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    except FileNotFoundError:
        return timezone.now()
