"""Run the whole test suite with the services it needs, isolated from any other run.

Checks Postgres and Redis (and RabbitMQ), starts a private SeaweedFS on free ports, and gives
this run its own database name, Redis key prefix, S3 bucket and var/ directory, then runs pytest
with any arguments given. Everything it started is stopped when pytest ends, or when the run is
told to stop (SIGTERM, SIGHUP: pytest is interrupted as by Ctrl-C first), and the Redis keys
under the run's prefix are deleted (some have no expiry: Celery's queue bindings, the
credentials epoch).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.processes import SeaweedS3, delete_redis_keys  # noqa: E402

# How long pytest may take to wind down (its fixtures' teardown, the test database's drop) once
# this run is asked to stop, before it is killed.
STOP_GRACE_SECONDS = 120


class Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (`timeout`, a CI runner's cancel) or SIGHUP would end this process at once: its
    # SeaweedFS, in a session of its own, ran on, and pytest, which got no signal, ran on too.
    # Raised instead, so that pytest is interrupted as by Ctrl-C (its teardown runs) and the
    # `with` blocks below stop what this process started. Once: a second signal must not cut
    # that short (SIGKILL still does).
    for other in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, signal.SIG_IGN)
    raise Stopped(signum)


def main(argv: list[str]) -> int:
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    try:
        return _run(argv)
    except Stopped as stopped:
        print(f"run_tests: stopped by {stopped}; what it started is stopped", file=sys.stderr)
        return 128 + stopped.signum


def _run(argv: list[str]) -> int:
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
        pytest = subprocess.Popen([sys.executable, "-m", "pytest", *argv], cwd=ROOT, env=env)  # noqa: S603
        try:
            return pytest.wait()
        except Stopped:
            _interrupt(pytest)
            raise
        finally:
            delete_redis_keys(env["REDIS_URL"], env["REDIS_KEY_PREFIX"])


def _interrupt(pytest: subprocess.Popen[bytes]) -> None:
    """Interrupt pytest as Ctrl-C does, and wait for it to wind down (or kill it)."""
    pytest.send_signal(signal.SIGINT)
    try:
        pytest.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.kill()
        pytest.wait()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
