"""Embedded mode's storage in a test: objects as files under a directory, no S3."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def use_local_storage(settings: Any, root: Path) -> Path:
    """Point Depot's default storage at `root` (pytest-django's `settings`, undone after)."""
    settings.S3_BUCKET = ""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": root},
        },
    }
    return root
