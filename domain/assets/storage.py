"""The object store, for the assets domain: presigned uploads, reads, writes, links.

A leaf module over Django's default storage: S3 (django-storages) in services mode, the local
filesystem in embedded mode. For the local case, uploads and downloads go through signed Depot
URLs (project.urls routes them to views in project/files.py) that mimic S3's presigned forms, so
a client does the same thing in both modes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path, PurePosixPath
from typing import IO, Any

from django.conf import settings
from django.core import signing
from django.core.files.base import File
from django.core.files.storage import Storage, storages
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header

from domain.common.errors import DomainError

UPLOAD_SALT = "depot.upload"
DOWNLOAD_SALT = "depot.download"
OCTET_STREAM = "application/octet-stream"
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class UploadTarget:
    """Where and how a client posts a file: a multipart form with `fields`, then the file."""

    url: str
    fields: dict[str, str]
    expires_at: datetime


def _storage() -> Storage:
    return storages["default"]


def is_s3() -> bool:
    """S3 (services mode), or local files (embedded mode)."""
    return bool(settings.S3_BUCKET)


@cache
def public_s3_client() -> Any:
    """A client that signs for the address browsers use, which may differ from ours."""
    import boto3
    from botocore.config import Config

    options = settings.STORAGES["default"]["OPTIONS"]
    client: Any = boto3.client(
        "s3",
        endpoint_url=str(settings.DEPOT_S3_PUBLIC_ENDPOINT_URL or "") or None,
        aws_access_key_id=options["access_key"],
        aws_secret_access_key=options["secret_key"],
        region_name=options["region_name"],
        config=Config(
            signature_version="s3v4", s3={"addressing_style": options["addressing_style"]}
        ),
    )
    return client


def internal_s3_client() -> Any:
    """The client the servers use: django-storages' own connection."""
    return _storage().connection.meta.client  # type: ignore[attr-defined]


def local_path(key: str) -> Path:
    """Where a key lives on local storage (embedded mode only)."""
    return Path(_storage().path(key))


def presign_upload(*, key: str, content_type: str, size: int) -> UploadTarget:
    """A form post that may only write `size` bytes of `content_type` at `key`."""
    ttl = settings.DEPOT_UPLOAD_URL_TTL_SECONDS
    expires_at = timezone.now() + timedelta(seconds=ttl)
    if is_s3():
        post = public_s3_client().generate_presigned_post(
            Bucket=settings.S3_BUCKET,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", size, size]],
            ExpiresIn=ttl,
        )
        return UploadTarget(url=post["url"], fields=post["fields"], expires_at=expires_at)
    policy = signing.dumps({"key": key, "type": content_type, "size": size}, salt=UPLOAD_SALT)
    return UploadTarget(
        url=reverse("local-upload"),
        fields={"key": key, "Content-Type": content_type, "policy": policy},
        expires_at=expires_at,
    )


def read_upload_policy(policy: str) -> dict[str, Any]:
    """The local upload policy, if its signature holds and it has not expired."""
    return dict(
        signing.loads(policy, salt=UPLOAD_SALT, max_age=settings.DEPOT_UPLOAD_URL_TTL_SECONDS)
    )


def object_size(key: str) -> int | None:
    storage = _storage()
    if not storage.exists(key):
        return None
    return int(storage.size(key))


def open_file(key: str) -> IO[bytes]:
    """An open handle for reading; the caller closes it."""
    handle: IO[bytes] = _storage().open(key, "rb")
    return handle


@contextmanager
def open_object(key: str) -> Iterator[IO[bytes]]:
    with open_file(key) as handle:
        yield handle


def copy_to(key: str, target: IO[bytes], chunk_size: int = 1024 * 1024) -> None:
    with open_object(key) as source:
        shutil.copyfileobj(source, target, chunk_size)


def write_object(key: str, source: IO[bytes], content_type: str) -> None:
    """Write at exactly this key, replacing what is there (keys are Depot's, never a client's).
    On local files the object appears whole or not at all: a failed write (OSError ENOSPC on
    a full disk) leaves nothing behind and what was there before untouched."""
    storage = _storage()
    if is_s3():
        wrapped = File(source, name=key)
        wrapped.content_type = content_type  # type: ignore[attr-defined]
        storage.save(key, wrapped)
        return
    with replacing_local_file(local_path(key), ".write-") as target:
        for chunk in File(source).chunks(CHUNK):
            target.write(chunk)


def new_local_file(directory: Path, prefix: str) -> tuple[IO[bytes], Path]:
    """A new empty file in `directory`, open for writing, and its path: where every local
    write starts (the caller moves it into place, or removes it)."""
    handle, name = tempfile.mkstemp(dir=directory, prefix=prefix)
    return os.fdopen(handle, "wb"), Path(name)


@contextmanager
def replacing_local_file(target: Path, prefix: str) -> Iterator[IO[bytes]]:
    """A file to write that takes `target`'s place once the block ends; if anything fails
    (the block, or the disk filling up) it is removed and `target` stays as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = new_local_file(target.parent, prefix)
    try:
        with handle:
            yield handle
        mode = getattr(_storage(), "file_permissions_mode", None)
        if mode is not None:
            temporary.chmod(mode)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def copy_object(source_key: str, target_key: str, content_type: str) -> None:
    """Copy an object to exactly `target_key`, replacing what is there; on S3 the copy is made
    by the store, and no byte passes through this process. FileNotFoundError when there is
    nothing at `source_key`."""
    storage = _storage()
    if is_s3():
        from botocore.exceptions import ClientError

        try:
            internal_s3_client().copy_object(
                Bucket=settings.S3_BUCKET,
                Key=target_key,
                CopySource={"Bucket": settings.S3_BUCKET, "Key": source_key},
                ContentType=content_type,
                MetadataDirective="REPLACE",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(source_key) from error
            raise
        return
    if not storage.exists(source_key):
        raise FileNotFoundError(source_key)
    with open_object(source_key) as source:
        write_object(target_key, source, content_type)


def delete_object(key: str) -> None:
    _storage().delete(key)


# S3's limit on the keys of one DeleteObjects request.
DELETE_OBJECTS_PER_REQUEST = 1000
# A store deletes a request's keys one after another: many keys go out as several requests at
# once (SeaweedFS here: 300 keys in 150 ms as one request, 95 ms as four), but never fewer than
# this many keys each.
DELETE_REQUESTS_AT_ONCE = 4
DELETE_KEYS_PER_REQUEST_AT_LEAST = 50


class ObjectsKept(DomainError):
    """The store refused to delete some of the objects (the others are gone)."""

    code = "STORAGE_ERROR"


def delete_objects(keys: Sequence[str]) -> None:
    """Delete the objects, missing ones included: on S3 with DeleteObjects requests of up to
    1,000 keys (a few at once), not one request per key. Raises ObjectsKept naming the first
    refusal, once every request has been answered."""
    if not is_s3():
        for key in keys:
            _storage().delete(key)
        return
    if not keys:
        return
    requests = max(
        min(DELETE_REQUESTS_AT_ONCE, len(keys) // DELETE_KEYS_PER_REQUEST_AT_LEAST),
        -(-len(keys) // DELETE_OBJECTS_PER_REQUEST),
        1,
    )
    per_request = -(-len(keys) // requests)
    chunks = [keys[start : start + per_request] for start in range(0, len(keys), per_request)]
    # One client for every request: django-storages keeps a connection per thread, and
    # boto3's clients are thread-safe (a client made per thread costs more than a request).
    client = internal_s3_client()
    if len(chunks) == 1:
        kept = _delete_chunk(client, chunks[0])
    else:
        with ThreadPoolExecutor(min(len(chunks), DELETE_REQUESTS_AT_ONCE)) as pool:
            answers = pool.map(lambda chunk: _delete_chunk(client, chunk), chunks)
            kept = [refusal for found in answers for refusal in found]
    if kept:
        first = kept[0]
        raise ObjectsKept(
            f"The store kept {len(kept)} of {len(keys)} objects; the first, {first.get('Key')}: "
            f"{first.get('Code')} {first.get('Message', '')}".rstrip()
        )


def _delete_chunk(client: Any, keys: Sequence[str]) -> list[dict[str, str]]:
    """One DeleteObjects request; the keys the store kept, with why."""
    response = client.delete_objects(
        Bucket=settings.S3_BUCKET,
        Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
    )
    return list(response.get("Errors", []))


def list_keys(prefix: str) -> list[str]:
    """Every key under a prefix (for tests and clean-up)."""
    storage = _storage()
    result: list[str] = []

    def walk(path: str) -> None:
        directories, files = storage.listdir(path)
        result.extend(f"{path.rstrip('/')}/{name}" for name in files)
        for directory in directories:
            walk(f"{path.rstrip('/')}/{directory}")

    walk(prefix)
    return sorted(result)


def shown_inline(content_type: str) -> bool:
    """Whether a browser may show this type in place: pictures, PDFs, sound and video, none
    of which it runs. SVG (it may hold script), markup and text are downloaded instead."""
    major, _, subtype = content_type.partition("/")
    if content_type == "application/pdf":
        return True
    return major in ("image", "audio", "video") and not ("svg" in subtype or "xml" in subtype)


def download_url(key: str, *, content_type: str | None = None, filename: str = "") -> str:
    """A link that expires: presigned GET on S3, a signed Depot URL on local storage.

    Whatever the object was stored with (the client's declared type, on S3), the store
    answers with `content_type` and shows it inline only if a browser would not run it
    (shown_inline); anything else, and a type not known yet (None), is served as
    application/octet-stream with `Content-Disposition: attachment`."""
    inline = content_type is not None and shown_inline(content_type)
    served = content_type if inline and content_type is not None else OCTET_STREAM
    name = PurePosixPath(filename.replace("\\", "/")).name
    disposition = content_disposition_header(not inline, name) or "inline"
    if is_s3():
        return str(
            public_s3_client().generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": settings.S3_BUCKET,
                    "Key": key,
                    "ResponseContentType": served,
                    "ResponseContentDisposition": disposition,
                },
                ExpiresIn=settings.DEPOT_DOWNLOAD_URL_TTL_SECONDS,
            )
        )
    token = signing.dumps(
        {"k": key, "t": served, "d": disposition}, salt=DOWNLOAD_SALT, compress=True
    )
    return reverse("local-download", args=[token])


@dataclass(frozen=True)
class Download:
    """What a local download link serves: the object at `key`, with these headers."""

    key: str
    content_type: str
    disposition: str


def read_download_token(token: str) -> Download:
    """What a local download link serves, if its signature holds and it has not expired."""
    payload = signing.loads(
        token, salt=DOWNLOAD_SALT, max_age=settings.DEPOT_DOWNLOAD_URL_TTL_SECONDS
    )
    if isinstance(payload, str):  # a link made before links carried their headers
        return Download(key=payload, content_type=OCTET_STREAM, disposition="attachment")
    return Download(key=payload["k"], content_type=payload["t"], disposition=payload["d"])
