"""storage.copy_object in both modes: S3 (the suite's SeaweedFS) and local files."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

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
