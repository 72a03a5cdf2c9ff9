"""Run the whole test suite with the services it needs, isolated from any other run.

Checks Postgres and Redis (and RabbitMQ), starts a private SeaweedFS on free ports, and gives
this run its own database name, Redis key prefix, S3 bucket and var/ directory, then runs pytest
with any arguments given. Everything it started is stopped when pytest ends, and the Redis keys
under the run's prefix are deleted (some have no expiry: Celery's queue bindings, the
credentials epoch).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.processes import SeaweedS3, delete_redis_keys  # noqa: E402


def main(argv: list[str]) -> int:
    checked = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "scripts" / "check_services.py"), "--rabbitmq"], check=False
    )
    if checked.returncode != 0:
        return checked.returncode
    run_id = uuid.uuid4().hex[:10]
    with (
        tempfile.TemporaryDirectory(prefix="depot-test-") as scratch,
        SeaweedS3().start(scratch) as s3,
    ):
        bucket = f"depot-test-{run_id}"
        s3.create_bucket(bucket)
        env = dict(os.environ)
        env.pop("CELERY_BROKER_URL", None)
        env.update(
            {
                # pytest-django creates test_<name> and drops it at the end.
                "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/depot_{run_id}",
                "REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
                "REDIS_KEY_PREFIX": f"depot-test-{run_id}",
                "DEPOT_QUEUE_PREFIX": f"depot-test-{run_id}",
                "TEST_RABBITMQ_URL": os.environ.get(
                    "TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//"
                ),
                **s3.depot_env(bucket),
                "DEPOT_VAR_DIR": str(Path(scratch) / "var"),
            }
        )
        try:
            result = subprocess.run(  # noqa: S603
                [sys.executable, "-m", "pytest", *argv], cwd=ROOT, env=env, check=False
            )
        finally:
            delete_redis_keys(env["REDIS_URL"], env["REDIS_KEY_PREFIX"])
        return result.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
