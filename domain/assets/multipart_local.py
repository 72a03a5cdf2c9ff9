"""Multipart uploads on local files (embedded mode), behind multipart_store: S3's calls, played
on the media root.

An upload is a directory `_multipart/<upload id>/` with `upload.json` (its key and start time)
and one file per part named `<part number>.<md5>`, the md5 being the part's ETag as on S3.
Part URLs are signed Depot URLs (project.files.local_upload_part). Completing concatenates the
parts in order into the object, streamed, then removes the directory. Every file is written
under a temporary name and moved into place, so a failed write (a full disk) leaves nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from domain.assets import storage
from domain.assets.multipart_types import PartChanged, PendingUpload, StoredPart, UploadGone

PART_SALT = "depot.upload-part"
CHUNK = 1024 * 1024
LOCAL_AREA = "_multipart"
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_PART = re.compile(r"(\d{5})\.([0-9a-f]{32})")


@dataclass(frozen=True)
class LocalPart:
    """What a signed local part URL allows: `size` bytes as part `number` of an upload."""

    key: str
    upload_id: str
    number: int
    size: int


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def create(*, key: str, content_type: str) -> str:
    upload_id = uuid.uuid4().hex
    directory = _directory(upload_id)
    directory.mkdir(parents=True)
    (directory / "upload.json").write_text(
        json.dumps({"key": key, "initiated": timezone.now().isoformat()})
    )
    return upload_id


def part_url(*, key: str, upload_id: str, number: int, size: int, ttl: int) -> str:
    # The token's age is checked against DEPOT_UPLOAD_URL_TTL_SECONDS (read_part_token).
    token = signing.dumps({"k": key, "u": upload_id, "n": number, "s": size}, salt=PART_SALT)
    return reverse("local-upload-part", args=[token])


def read_part_token(token: str) -> LocalPart:
    """What a local part URL allows, if its signature holds and it has not expired."""
    payload = signing.loads(token, salt=PART_SALT, max_age=settings.DEPOT_UPLOAD_URL_TTL_SECONDS)
    return LocalPart(
        key=payload["k"], upload_id=payload["u"], number=payload["n"], size=payload["s"]
    )


def store_local_part(part: LocalPart, source: Readable) -> str:
    """Store exactly `part.size` bytes read from `source` as the part; returns its ETag.
    UploadGone if the upload is not there (any more); ValueError if the body is short; OSError
    (ENOSPC) when the disk is full, with nothing of the part left behind."""
    directory = _directory(part.upload_id)
    if not (directory / "upload.json").exists():
        raise UploadGone(part.upload_id)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        target, temporary = storage.new_local_file(directory, ".part-")
    except FileNotFoundError:
        raise UploadGone(part.upload_id) from None
    try:
        with target:
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
        temporary.unlink(missing_ok=True)
    _drop_older_copies(directory, part.number, final)
    return f'"{digest.hexdigest()}"'


def list_parts(*, key: str, upload_id: str) -> list[StoredPart]:
    return [part for part, _ in _parts(upload_id)]


def complete(*, key: str, upload_id: str, parts: Sequence[StoredPart]) -> None:
    stored = {part.number: (part, path) for part, path in _parts(upload_id)}
    with storage.replacing_local_file(storage.local_path(key), ".assemble-") as joined:
        for part in parts:
            found = stored.get(part.number)
            if found is None or found[0].etag != part.etag:
                raise PartChanged(f"part {part.number}")
            try:
                with found[1].open("rb") as source:
                    shutil.copyfileobj(source, joined, CHUNK)
            except FileNotFoundError:
                raise PartChanged(f"part {part.number}") from None
    shutil.rmtree(_directory(upload_id), ignore_errors=True)


def abort(*, key: str, upload_id: str) -> None:
    try:
        directory = _directory(upload_id)
    except UploadGone:
        return  # not an id of ours: there is nothing of it to remove
    shutil.rmtree(directory, ignore_errors=True)


def pending() -> Iterator[PendingUpload]:
    area = storage.local_path(LOCAL_AREA)
    if not area.is_dir():
        return
    for directory in area.iterdir():
        if not _UPLOAD_ID.fullmatch(directory.name):
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


def _directory(upload_id: str) -> Path:
    if not _UPLOAD_ID.fullmatch(upload_id):
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


def _parts(upload_id: str) -> list[tuple[StoredPart, Path]]:
    """The newest copy of each part number, in order, with its file."""
    directory = _directory(upload_id)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        raise UploadGone(upload_id) from None
    newest: dict[int, tuple[tuple[int, str], StoredPart, Path]] = {}
    for name in names:
        match = _PART.fullmatch(name)
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


def _mtime(path: Path) -> datetime:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    except FileNotFoundError:
        return timezone.now()
