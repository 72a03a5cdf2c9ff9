"""A full disk, for real: every local write Depot starts goes to Linux's /dev/full, whose
writes fail with the kernel's ENOSPC, as on a disk that has filled up."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from unittest import mock

import pytest


@contextmanager
def full_disk() -> Iterator[None]:
    """While active, storage.new_local_file makes its file where it would (so a test sees what
    is left behind), but hands back a handle whose writes fail with ENOSPC."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs Linux's /dev/full")

    def new_local_file(directory: Path, prefix: str) -> tuple[IO[bytes], Path]:
        handle, name = tempfile.mkstemp(dir=directory, prefix=prefix)
        os.close(handle)
        return open("/dev/full", "wb"), Path(name)

    with mock.patch("domain.assets.storage.new_local_file", new_local_file):
        yield


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())
