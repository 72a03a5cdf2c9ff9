"""storage.copy_object and delete_objects in both modes: S3 (the suite's SeaweedFS) and local
files."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from domain.assets import storage


def _read(key: str) -> bytes:
    with storage.open_object(key) as handle:
        return handle.read()


def _copies_and_replaces(prefix: str) -> None:
    storage.write_object(f"{prefix}/a.jpeg", io.BytesIO(b"first"), "image/jpeg")
    storage.write_object(f"{prefix}/b.jpeg", io.BytesIO(b"old bytes"), "image/jpeg")
    storage.copy_object(f"{prefix}/a.jpeg", f"{prefix}/b.jpeg", "image/jpeg")
    assert _read(f"{prefix}/b.jpeg") == b"first"
    assert _read(f"{prefix}/a.jpeg") == b"first"
    with pytest.raises(FileNotFoundError):
        storage.copy_object(f"{prefix}/missing.jpeg", f"{prefix}/c.jpeg", "image/jpeg")
    assert storage.object_size(f"{prefix}/c.jpeg") is None


def _deletes_every_object_missing_ones_included(prefix: str) -> None:
    keys = [f"{prefix}/{n}.jpeg" for n in range(5)]
    for key in keys:
        storage.write_object(key, io.BytesIO(b"bytes"), "image/jpeg")
    storage.write_object(f"{prefix}/kept.jpeg", io.BytesIO(b"bytes"), "image/jpeg")
    storage.delete_objects([*keys, f"{prefix}/never-written.jpeg"])
    assert storage.list_keys(prefix) == [f"{prefix}/kept.jpeg"]
    storage.delete_objects([])


@pytest.fixture
def s3_prefix(settings: Any) -> Iterator[str]:
    if not settings.S3_BUCKET:
        pytest.skip("needs S3")
    prefix = f"tests/{uuid.uuid4().hex}"
    yield prefix
    for key in storage.list_keys(prefix):
        storage.delete_object(key)


@pytest.mark.services
def test_delete_objects_in_the_object_store_takes_a_few_requests_at_once(
    s3_prefix: str,
) -> None:
    requests: list[int] = []
    client = storage.internal_s3_client()
    delete_objects = client.delete_objects

    def counted(**kwargs: Any) -> Any:
        requests.append(len(kwargs["Delete"]["Objects"]))
        return delete_objects(**kwargs)

    # Two keys a request here (S3 takes 1,000), so six keys take three requests, sent at once.
    with (
        mock.patch.object(storage, "DELETE_OBJECTS_PER_REQUEST", 2),
        mock.patch.object(client, "delete_objects", counted),
    ):
        _deletes_every_object_missing_ones_included(s3_prefix)
    assert requests == [2, 2, 2]
    requests.clear()
    # Many keys go out as a few requests at once, none under the floor (50 keys).
    keys = [f"{s3_prefix}/never-written-{n}" for n in range(150)]
    with mock.patch.object(client, "delete_objects", counted):
        storage.delete_objects(keys[:60])
        assert requests == [60]
        storage.delete_objects(keys)
    assert requests[1:] == [50, 50, 50]


@pytest.mark.services
def test_delete_objects_says_which_object_the_store_kept(s3_prefix: str) -> None:
    keys = [f"{s3_prefix}/{n}.jpeg" for n in range(3)]
    for key in keys:
        storage.write_object(key, io.BytesIO(b"bytes"), "image/jpeg")
    client = storage.internal_s3_client()
    delete_objects = client.delete_objects

    def refusing_the_second(**kwargs: Any) -> Any:
        # S3 answers 200 and lists the keys it kept (a bucket policy, object lock): the rest go.
        objects = kwargs["Delete"]["Objects"]
        delete_objects(**{**kwargs, "Delete": {**kwargs["Delete"], "Objects": objects[::2]}})
        refused = {"Key": objects[1]["Key"], "Code": "AccessDenied", "Message": "Access Denied"}
        return {"Errors": [refused]}

    with (
        mock.patch.object(client, "delete_objects", refusing_the_second),
        pytest.raises(storage.ObjectsKept) as kept,
    ):
        storage.delete_objects(keys)
    assert kept.value.code == "STORAGE_ERROR"
    assert f"kept 1 of 3 objects; the first, {keys[1]}: AccessDenied" in kept.value.message
    assert storage.list_keys(s3_prefix) == [keys[1]]


@pytest.mark.services
def test_copy_object_in_the_object_store(settings: Any) -> None:
    if not settings.S3_BUCKET:
        pytest.skip("needs S3")
    prefix = f"tests/{uuid.uuid4().hex}"
    try:
        _copies_and_replaces(prefix)
    finally:
        for key in storage.list_keys(prefix):
            storage.delete_object(key)


def test_copy_object_on_local_files(settings: Any, tmp_path: Path) -> None:
    settings.S3_BUCKET = ""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path},
        },
    }
    _copies_and_replaces("w/1/renditions")
    assert (tmp_path / "w/1/renditions/b.jpeg").read_bytes() == b"first"
    _deletes_every_object_missing_ones_included("w/1/originals")
