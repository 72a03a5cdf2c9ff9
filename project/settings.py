"""Depot's one settings module: every choice comes from the environment.

With no variables set Depot runs embedded (SQLite, local files, in-memory channel layer and an
in-process Celery worker). Each service variable switches one piece to its service:
DATABASE_URL -> Postgres, REDIS_URL -> channels-redis (and the Celery broker),
CELERY_BROKER_URL -> any Celery broker (RabbitMQ included), S3_BUCKET -> S3 storage.
See docs/operations.md for the full list.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from redis.driver_info import DriverInfo
from redis.maint_notifications import MaintNotificationsConfig

from project.env import ConfigError, Env, check_url_scheme, parse_database_url, parse_rate

BASE_DIR = Path(__file__).resolve().parent.parent
env = Env(os.environ)

VAR_DIR = Path(env.str("DEPOT_VAR_DIR") or BASE_DIR / "var").resolve()
DEPOT_ENV = env.str("DEPOT_ENV", "development")
if DEPOT_ENV not in {"development", "production"}:
    raise ConfigError("DEPOT_ENV", f"expected development or production, got {DEPOT_ENV!r}")
PRODUCTION = DEPOT_ENV == "production"
DEBUG = env.bool("DJANGO_DEBUG", default=False)


def _secret_key() -> str:
    configured = env.str("DJANGO_SECRET_KEY")
    if configured:
        return configured
    if PRODUCTION:
        raise ConfigError("DJANGO_SECRET_KEY", "must be set when DEPOT_ENV=production")
    # Development keeps a generated key under var/ so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "channels",
    "strawberry_django",
    "domain.accounts",
    "domain.jobs",
    "domain.assets",
    "project",
]

MIDDLEWARE = [
    # Bearer-token GraphQL requests skip the rest of the chain (its hooks that shape responses
    # run inline): see schema.http.BearerGraphQLLane.
    "schema.http.BearerGraphQLLane",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]

# --- data: Postgres with Django's psycopg 3 pool, or SQLite in WAL mode --------------------
DATABASE_URL = env.str("DATABASE_URL")
if DATABASE_URL:
    _database: dict[str, Any] = parse_database_url("DATABASE_URL", DATABASE_URL)
    if env.bool("DATABASE_POOL", default=True):
        _database["OPTIONS"]["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN", 1),
            "max_size": env.int("DATABASE_POOL_MAX", 8, minimum=1),
            "timeout": 10,
        }
    _database["CONN_MAX_AGE"] = 0
else:
    _database = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "depot.sqlite3",
        "OPTIONS": {
            # IMMEDIATE takes the write lock at BEGIN, so two writers queue on busy_timeout
            # instead of one failing with "database is locked" when it upgrades its lock.
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer fan-out (and the Celery broker unless told otherwise) ------------
REDIS_URL = env.str("REDIS_URL")
if REDIS_URL:
    check_url_scheme("REDIS_URL", REDIS_URL, {"redis", "rediss", "unix"})
# Keeps concurrent runs (tests, several deployments on one Redis) from reading each other's keys.
REDIS_KEY_PREFIX = env.str("REDIS_KEY_PREFIX", "depot")

# Options for every redis-py client Depot makes (the channel layer, its publisher, the cache, the
# socket counts). redis-py introduces itself on each new connection: CLIENT SETINFO twice and
# CLIENT MAINT_NOTIFICATIONS (maintenance events of managed Redis offerings). Redis before 7.2
# refuses all three: three round trips before the connection's first command, and three
# exceptions left in cycles each time a connection is made (the channel layer's reader makes
# one after every Redis restart). Depot's clients reconnect on their own (health checks, a
# retry on a broken connection), so they do not need maintenance events.
REDIS_CLIENT_OPTIONS: dict[str, Any] = {
    "driver_info": DriverInfo(name=None, lib_version=None),
    "maint_notifications_config": MaintNotificationsConfig(enabled=False),
}

# Above channels-redis's fixed 5 s BZPOPMIN block (see the host options below).
CHANNELS_REDIS_SOCKET_TIMEOUT = 15.0
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "realtime.layers.ProcessReaderRedisChannelLayer",
            "CONFIG": {
                # A health check on idle connections lets the layer reconnect by itself after
                # Redis restarts, instead of failing once per stale pooled connection.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        **REDIS_CLIENT_OPTIONS,
                        "health_check_interval": 2,
                        # channels-redis blocks in BZPOPMIN for 5 s; redis-py's default 5 s
                        # socket timeout would fire first and kill the receive loop of an
                        # idle socket, so the read timeout must be longer than the block.
                        "socket_timeout": CHANNELS_REDIS_SOCKET_TIMEOUT,
                        # redis-py's pool raises past 100 connections (it does not wait), and
                        # each group_add/group_send of a busy process holds one briefly.
                        "max_connections": env.int(
                            "CHANNELS_REDIS_MAX_CONNECTIONS", 2000, minimum=10
                        ),
                    }
                ],
                "prefix": f"{REDIS_KEY_PREFIX}:asgi",
                "capacity": env.int("CHANNELS_CAPACITY", 1000, minimum=10),
                "expiry": 60,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "realtime.layers.ThreadSafeInMemoryChannelLayer"}}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL") or REDIS_URL or "memory://"
check_url_scheme(
    "CELERY_BROKER_URL",
    CELERY_BROKER_URL,
    {"redis", "rediss", "amqp", "amqps", "pyamqp", "memory", "sqs"},
)
# A broker in process memory cannot reach a separate worker: the server runs one in a thread.
DEPOT_EMBEDDED_WORKER = CELERY_BROKER_URL.startswith("memory://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {}
if CELERY_BROKER_URL.startswith(("redis", "rediss")):
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = f"{REDIS_KEY_PREFIX}:celery:"
    # No acknowledgement emulation: kombu's Redis transport would copy every message into an
    # "unacked" hash before handing it to the pool and delete it after the task (a Redis round
    # trip each, the first one on every job's path: -1.7 ms per no-op job without it, paired,
    # bench/realtime README), so that a worker that dies holding a message gets it redelivered
    # after a visibility timeout. Depot's own recovery is faster and covers that case: a job
    # nobody claimed within DEPOT_DISPATCH_GRACE_SECONDS, or whose lease expired, is dispatched
    # again by the sweeper (celery beat), and a claim admits one runner. A warm shutdown still
    # puts back what the worker had reserved. tests/e2e/test_spine.py kills a worker that holds
    # a message it never claimed.
    CELERY_BROKER_TRANSPORT_OPTIONS["ack_emulation"] = False
if DEPOT_EMBEDDED_WORKER:
    CELERY_BROKER_TRANSPORT_OPTIONS["polling_interval"] = 0.02
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fix-up closes every database connection around every task and, in a prefork
# child with Django's pool, closes the whole pool: each job then opened a new Postgres connection
# (5-10 ms of its latency, measured in bench/realtime). Tasks return their connection to the pool
# themselves (tasks/jobs.py); the fix-up recycles everything only every this many tasks.
CELERY_DB_REUSE_MAX = 1000
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_REDIRECT_STDOUTS = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
DEPOT_QUEUE_PREFIX = env.str("DEPOT_QUEUE_PREFIX", "depot")
CELERY_TASK_DEFAULT_QUEUE = f"{DEPOT_QUEUE_PREFIX}.interactive"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- job ledger -------------------------------------------------------------------------------
DEPOT_JOB_LEASE_SECONDS = env.int("DEPOT_JOB_LEASE_SECONDS", 60, minimum=2)
# A job runs held by a lock on its row, not claimed, for this long: one that ends sooner commits
# its start and its end together (domain/jobs/quick.py). 0 claims every job at once.
DEPOT_JOB_QUICK_SECONDS = env.float("DEPOT_JOB_QUICK_SECONDS", 0.05, minimum=0)
DEPOT_SWEEP_INTERVAL_SECONDS = env.float("DEPOT_SWEEP_INTERVAL_SECONDS", 15.0)
# A job's run is stopped after this long unless its kind says otherwise (domain/jobs/
# time_limits.py): SoftTimeLimitExceeded in the handler, and, this margin later, the worker's
# child is killed (a handler that ignored it). Prefork workers only.
DEPOT_JOB_TIME_LIMIT_SECONDS = env.float("DEPOT_JOB_TIME_LIMIT_SECONDS", 900.0, minimum=1)
DEPOT_JOB_HARD_TIME_LIMIT_MARGIN_SECONDS = env.float(
    "DEPOT_JOB_HARD_TIME_LIMIT_MARGIN_SECONDS", 30.0, minimum=1
)
# A QUEUED job not claimed this long after dispatch is handed to the broker again.
DEPOT_DISPATCH_GRACE_SECONDS = env.int("DEPOT_DISPATCH_GRACE_SECONDS", 30, minimum=1)
# Each time the sweeper sends it again and it is still not claimed, the wait before the next
# send doubles, up to this (domain/jobs/sweeper.py): a long backlog is not sent twice a minute.
DEPOT_REDISPATCH_MAX_SECONDS = env.int("DEPOT_REDISPATCH_MAX_SECONDS", 600, minimum=1)
DEPOT_PROGRESS_MIN_INTERVAL = env.float("DEPOT_PROGRESS_MIN_INTERVAL", 0.25)
DEPOT_EVENT_RETENTION_DAYS = env.int("DEPOT_EVENT_RETENTION_DAYS", 7, minimum=1)
# Idempotency keys are honoured at least this long (clients retry within a day).
DEPOT_IDEMPOTENCY_TTL_HOURS = env.int("DEPOT_IDEMPOTENCY_TTL_HOURS", 48, minimum=24)
# Test-only fault injection, e.g. "asset.process.after_rendition=sleep:30" (see domain/common).
DEPOT_FAILPOINTS = env.str("DEPOT_FAILPOINTS")

# --- storage: S3 (any compatible server) or local files under var/ -------------------------
S3_BUCKET = env.str("S3_BUCKET")
DEPOT_MAX_UPLOAD_BYTES = env.int("DEPOT_MAX_UPLOAD_BYTES", 200 * 1024 * 1024, minimum=1)
DEPOT_UPLOAD_URL_TTL_SECONDS = env.int("DEPOT_UPLOAD_URL_TTL_SECONDS", 3600, minimum=60)
DEPOT_DOWNLOAD_URL_TTL_SECONDS = env.int("DEPOT_DOWNLOAD_URL_TTL_SECONDS", 900, minimum=30)
DEPOT_MAX_IMAGE_PIXELS = env.int("DEPOT_MAX_IMAGE_PIXELS", 50_000_000, minimum=1)
# Multipart uploads: parts of this size at least (S3 refuses parts under 5 MiB but the last),
# larger when a file would need more than S3's 10,000 parts. An upload not completed this long
# after it started is aborted and its asset deleted (the hourly multipart sweep).
DEPOT_MULTIPART_PART_BYTES = env.int(
    "DEPOT_MULTIPART_PART_BYTES", 8 * 1024 * 1024, minimum=5 * 1024 * 1024
)
DEPOT_MULTIPART_EXPIRY_HOURS = env.int("DEPOT_MULTIPART_EXPIRY_HOURS", 168, minimum=1)
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media/"

if S3_BUCKET:
    _s3_options = {
        "bucket_name": S3_BUCKET,
        "endpoint_url": env.str("S3_ENDPOINT_URL") or None,
        "access_key": env.required("S3_ACCESS_KEY_ID", "S3_BUCKET is set"),
        "secret_key": env.required("S3_SECRET_ACCESS_KEY", "S3_BUCKET is set"),
        "region_name": env.str("S3_REGION", "us-east-1"),
        "signature_version": "s3v4",
        "addressing_style": env.str("S3_ADDRESSING_STYLE", "path"),
        "default_acl": None,
        "querystring_auth": True,
        "file_overwrite": True,
        "querystring_expire": DEPOT_DOWNLOAD_URL_TTL_SECONDS,
    }
    if _s3_options["endpoint_url"]:
        check_url_scheme("S3_ENDPOINT_URL", str(_s3_options["endpoint_url"]), {"http", "https"})
    # Browsers reach S3 at this address, which may differ from the one the servers use.
    DEPOT_S3_PUBLIC_ENDPOINT_URL = env.str("S3_PUBLIC_ENDPOINT_URL") or _s3_options["endpoint_url"]
    _default_storage: dict[str, Any] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": _s3_options,
    }
else:
    DEPOT_S3_PUBLIC_ENDPOINT_URL = None
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "base_url": MEDIA_URL},
    }

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every start without it
# The dashboard's build; listed even before it exists, so a build needs no restart.
STATICFILES_DIRS = [BASE_DIR / "frontend" / "dist"]
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = not PRODUCTION

# --- GraphQL ----------------------------------------------------------------------------------
DEPOT_GRAPHIQL = env.bool("DEPOT_GRAPHIQL", default=not PRODUCTION)
STRAWBERRY_DJANGO = {
    "FIELD_DESCRIPTION_FROM_HELP_TEXT": True,
    "TYPE_DESCRIPTION_FROM_MODEL_DOCSTRING": True,
    "MAP_AUTO_ID_AS_GLOBAL_ID": True,
}
DEPOT_WS_ALLOWED_ORIGINS = env.list("DEPOT_WS_ALLOWED_ORIGINS", [])
DEPOT_WS_INIT_TIMEOUT_SECONDS = env.float("DEPOT_WS_INIT_TIMEOUT_SECONDS", 5.0)
DEPOT_WS_MAX_SUBSCRIPTIONS = env.int("DEPOT_WS_MAX_SUBSCRIPTIONS", 20, minimum=1)
DEPOT_WS_MAX_SOCKETS_PER_USER = env.int("DEPOT_WS_MAX_SOCKETS_PER_USER", 50, minimum=1)
# Revoked tokens and removed members lose their sockets at once (a nudge), or by this at worst.
DEPOT_WS_RECHECK_SECONDS = env.float("DEPOT_WS_RECHECK_SECONDS", 30.0)
# Live messages buffered per subscription before a slow subscriber is told to resume later.
DEPOT_WS_BACKLOG = env.int("DEPOT_WS_BACKLOG", 500, minimum=10)
# A subscription that heard nothing this long reads the durable state (`events`: the workspace's
# last sequence, `job`: the job): a lost last live message reaches the client by then. 0: never.
DEPOT_WS_IDLE_CHECK_SECONDS = env.float("DEPOT_WS_IDLE_CHECK_SECONDS", 5.0)
# Abuse limits: an operation over any of them is refused before a resolver runs.
DEPOT_GRAPHQL_INTROSPECTION = env.bool("DEPOT_GRAPHQL_INTROSPECTION", default=not PRODUCTION)
DEPOT_GRAPHQL_MAX_DEPTH = env.int("DEPOT_GRAPHQL_MAX_DEPTH", 10, minimum=2)
DEPOT_GRAPHQL_MAX_ALIASES = env.int("DEPOT_GRAPHQL_MAX_ALIASES", 15, minimum=1)
DEPOT_GRAPHQL_MAX_TOKENS = env.int("DEPOT_GRAPHQL_MAX_TOKENS", 2000, minimum=100)
DEPOT_GRAPHQL_MAX_PAGE_SIZE = env.int("DEPOT_GRAPHQL_MAX_PAGE_SIZE", 100, minimum=1)
DEPOT_GRAPHQL_MAX_COST = env.int("DEPOT_GRAPHQL_MAX_COST", 20_000, minimum=10)
DEPOT_GRAPHQL_MAX_BATCH = env.int("DEPOT_GRAPHQL_MAX_BATCH", 10, minimum=1)
# Asset and collection queries are served from a cache keyed on the event sequences (0: off).
DEPOT_READ_CACHE_SECONDS = env.int("DEPOT_READ_CACHE_SECONDS", 30)
# How long a process may reuse an API token's lookup while the credentials epoch stands (0: read
# it for every request); domain/accounts/credentials.py.
DEPOT_TOKEN_CACHE_SECONDS = env.int("DEPOT_TOKEN_CACHE_SECONDS", 30, minimum=0)
DEPOT_PERSISTED_QUERY_TTL_SECONDS = env.int("DEPOT_PERSISTED_QUERY_TTL_SECONDS", 86_400 * 7)
# Rate limits, "<requests>/<seconds>": per API token, and per client IP for every request.
DEPOT_RATE_LIMIT_TOKEN = parse_rate(
    "DEPOT_RATE_LIMIT_TOKEN", env.str("DEPOT_RATE_LIMIT_TOKEN", "1200/60")
)
DEPOT_RATE_LIMIT_IP = parse_rate("DEPOT_RATE_LIMIT_IP", env.str("DEPOT_RATE_LIMIT_IP", "2400/60"))
DEPOT_LOGIN_FAILURES = parse_rate("DEPOT_LOGIN_FAILURES", env.str("DEPOT_LOGIN_FAILURES", "5/900"))

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"{REDIS_KEY_PREFIX}:cache",
            # Passed to redis-py's connection pool.
            "OPTIONS": REDIS_CLIENT_OPTIONS,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- the rest ---------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("DEPOT_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
SILENCED_SYSTEM_CHECKS = ["staticfiles.W004"]  # frontend/dist appears with the first build
