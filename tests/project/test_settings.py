"""Configuration: wrong settings stop every entry point at start, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(argv: list[str], tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("S3_", "DATABASE_", "REDIS_", "CELERY_"))
    }
    env.update({"DEPOT_VAR_DIR": str(tmp_path), **overrides})
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"DATABASE_URL": "mysql://db/depot"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://127.0.0.1:5432"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL"),
        ({"CELERY_BROKER_URL": "kafka://x"}, "CELERY_BROKER_URL"),
        ({"S3_BUCKET": "media"}, "S3_ACCESS_KEY_ID"),
        ({"DEPOT_JOB_LEASE_SECONDS": "soon"}, "DEPOT_JOB_LEASE_SECONDS"),
        ({"DEPOT_JOB_QUICK_SECONDS": "-1"}, "DEPOT_JOB_QUICK_SECONDS"),
        ({"DEPOT_JOB_QUICK_SECONDS": "nan"}, "DEPOT_JOB_QUICK_SECONDS"),
        ({"DEPOT_ENV": "production"}, "DJANGO_SECRET_KEY"),
    ],
)
def test_a_bad_setting_stops_manage_py_with_its_name(
    tmp_path: Path, variables: dict[str, str], named: str
) -> None:
    result = _run([sys.executable, "manage.py", "check"], tmp_path, **variables)
    assert result.returncode == 2
    assert f"configuration error: {named}:" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_setting_stops_the_worker_and_the_web_server(tmp_path: Path) -> None:
    worker = _run(
        [str(BIN / "celery"), "-A", "project", "worker"], tmp_path, REDIS_URL="http://nowhere"
    )
    assert worker.returncode == 2
    assert "configuration error: REDIS_URL:" in worker.stderr
    web = _run([sys.executable, "-c", "import project.asgi"], tmp_path, DATABASE_URL="sqlite:///x")
    assert web.returncode == 2
    assert "configuration error: DATABASE_URL:" in web.stderr
    assert "Traceback" not in web.stderr


def test_the_celery_app_serves_every_lane_and_schedules_the_sweeper() -> None:
    from domain.jobs.lanes import Lane
    from project.celery import app

    assert {queue.name for queue in app.conf.task_queues} == {lane.queue for lane in Lane}
    sweep = app.conf.beat_schedule["sweep-jobs"]
    assert sweep["task"] == "depot.sweep_jobs"
    app.loader.import_default_modules()  # what a worker does at start
    assert set(app.tasks) >= {"depot.run_job", "depot.sweep_jobs"}
