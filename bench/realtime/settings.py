"""Depot's own settings (project.settings) in services mode, for the realtime benchmark.

Everything comes from the environment as in production; this module only fills in the bench's
defaults before project.settings reads them: its own Postgres database (depot_bench_rt), its own
Redis database (13: the test suite's cache.clear() flushes db 0 while it runs, which wiped the
channel layer's group memberships mid-run) with its own key prefix and Celery queue prefix,
production mode, and a per-user socket limit above the 1,000 subscribers one bench user opens.
The bare consumer gets channels-redis's own layer ("stock"). It also installs the bench app (the
bench.noop job kind) and the bench URLs (one bench-only endpoint in front of Depot's own).
"""

from __future__ import annotations

import os
from pathlib import Path

_RUN = Path(os.environ.get("BENCH_RUN_DIR", Path(__file__).resolve().parent / ".run"))
_DEFAULTS = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/depot_bench_rt",
    "REDIS_URL": "redis://127.0.0.1:6379/13",
    "REDIS_KEY_PREFIX": "depotbenchrt",
    "DEPOT_QUEUE_PREFIX": "depotbenchrt",
    "DEPOT_ENV": "production",
    "DJANGO_SECRET_KEY": "bench-realtime-not-a-secret-0123456789-abcdefghijklmnopqrstuvwxyz",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "DEPOT_VAR_DIR": str(_RUN / "var"),
    "DEPOT_LOG_LEVEL": "WARNING",
    # One bench user holds every socket (1,000 at once); Depot's default allows 50 per user.
    "DEPOT_WS_MAX_SOCKETS_PER_USER": "5000",
    # Depot re-checks every socket's credentials every 30 s by default. That work scales with
    # sockets, not deliveries, and at 1,000 sockets opened together it lands in storms that
    # would fall into some measurement windows and not others; the bench parks it and measures
    # its cost apart (a credentials nudge to all 1,000 sockets, see README). Set
    # DEPOT_WS_RECHECK_SECONDS=30 to run with Depot's default.
    "DEPOT_WS_RECHECK_SECONDS": "3600",
    # Every operation sent on a socket counts against the rate limits, as a request does: one
    # bench user, from one address, subscribes thousands of times a minute (still counted:
    # the admission's Redis round trip stays on every path).
    "DEPOT_RATE_LIMIT_TOKEN": "1000000000/60",
    "DEPOT_RATE_LIMIT_IP": "1000000000/60",
}
for _name, _value in _DEFAULTS.items():
    os.environ.setdefault(_name, _value)

from project.settings import *  # noqa: E402, F403
from project.settings import CHANNEL_LAYERS, INSTALLED_APPS  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "bench.realtime.apps.BenchRealtimeConfig"]
ROOT_URLCONF = "bench.realtime.urls"

# The bare consumer (bare.py) is stock Channels: channels-redis's own layer, with Depot's layer
# configuration. Its channels live in their own process key, and group sends reach both.
CHANNEL_LAYERS = {
    **CHANNEL_LAYERS,
    "stock": {**CHANNEL_LAYERS["default"], "BACKEND": "channels_redis.core.RedisChannelLayer"},
}
