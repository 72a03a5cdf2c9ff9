"""The worker's own disk: where jobs keep their scratch copies of originals (under TMPDIR) and,
in embedded mode, where the store writes too. A full disk there is not the asset's fault: the
original is intact in storage, so a job that meets one fails with WORKER_DISK_FULL, which says
that retrying (once there is room) will do."""

from __future__ import annotations

import errno
from pathlib import Path

WORKER_DISK_FULL = "WORKER_DISK_FULL"
FULL_MESSAGE = "The worker ran out of local disk space; the upload is intact: retry the job."
# A quota reached reads like a full disk to the job (project/files.py says the same for uploads).
_FULL = (errno.ENOSPC, errno.EDQUOT)


def is_full(error: OSError) -> bool:
    return error.errno in _FULL


def scratch_path(scratch: str) -> Path:
    """Where the worker keeps its local copy of the original (under TMPDIR)."""
    return Path(scratch) / "original"
