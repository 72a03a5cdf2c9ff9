"""Named fault-injection points for tests that must stop a process at an exact moment.

DEPOT_FAILPOINTS="asset.process.after_rendition=sleep:30" makes `failpoint("asset.process.
after_rendition")` sleep 30 s there, so a test can SIGKILL the worker after a side effect and
before the job finishes; `hang:30` sleeps through exceptions too, `raise` raises, `soft_limit`
raises what Celery raises at a run's soft time limit (SoftTimeLimitExceeded), which lands
wherever the worker's code is at that moment. Unset (always, outside tests) it costs one
attribute lookup. Read at each call, so a test may set it through pytest-django's `settings`.
"""

from __future__ import annotations

import time
from functools import cache

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings


@cache
def _parsed(configured: str) -> dict[str, str]:
    points: dict[str, str] = {}
    for item in configured.split(","):
        name, _, action = item.strip().partition("=")
        if name:
            points[name] = action
    return points


def failpoint(name: str) -> None:
    configured = settings.DEPOT_FAILPOINTS
    if not configured:
        return
    action = _parsed(configured).get(name)
    if action is None:
        return
    kind, _, argument = action.partition(":")
    if kind == "sleep":
        time.sleep(float(argument or "3600"))
    elif kind == "raise":
        raise RuntimeError(f"failpoint {name}")
    elif kind == "soft_limit":
        raise SoftTimeLimitExceeded(f"failpoint {name}")
    elif kind == "hang":
        # Sleeps through any exception raised meanwhile: a handler that ignores its soft time
        # limit (SoftTimeLimitExceeded), for the hard one to stop.
        until = time.monotonic() + float(argument or "3600")
        while (left := until - time.monotonic()) > 0:
            try:
                time.sleep(left)
            except Exception:  # noqa: S112 (that is the point)
                continue
