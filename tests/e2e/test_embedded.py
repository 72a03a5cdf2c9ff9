"""Embedded mode: `manage.py serve` with no service variables does the whole flow alone."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests import media
from tests.e2e.flow import download, read_asset, upload_and_watch
from tests.support.client import GraphQLClient
from tests.support.processes import ManagedProcess, free_port, wait_for, wait_for_http

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def embedded_env(var_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("S3_", "DATABASE_", "REDIS_", "CELERY_", "DEPOT_"))
    }
    env["DEPOT_VAR_DIR"] = str(var_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_the_embedded_server_runs_the_upload_flow_alone(tmp_path: Path) -> None:
    port = free_port()
    with ManagedProcess(
        [sys.executable, "manage.py", "serve", "--port", str(port), "--demo"],
        log_dir=tmp_path,
        name="serve",
        env=embedded_env(tmp_path / "var"),
        cwd=ROOT,
    ).start() as server:
        base = f"http://127.0.0.1:{port}/"
        wait_for_http(base + "healthz/", 60, process=server)
        wait_for(lambda: "API token:" in server.log_tail(50), 10, what="the demo token")
        token = re.search(r"API token: (\S+)", server.log_tail(50))
        assert token is not None
        client = GraphQLClient(base, token.group(1))
        viewer = client.data(
            "{ viewer { memberships { workspace { id collections { edges { node { id } } } } } } }"
        )["viewer"]
        workspace = viewer["memberships"][0]["workspace"]
        collection = workspace["collections"]["edges"][0]["node"]["id"]

        content = media.jpeg(900, 600)
        watched = asyncio.run(upload_and_watch(client, workspace["id"], collection, content))

        assert watched.job_events == ["job.queued", "job.started", "job.succeeded"]
        asset = read_asset(client, watched.asset_id)
        assert asset["state"] == "READY"
        assert (asset["metadata"]["width"], asset["metadata"]["height"]) == (900, 600)
        [thumb] = [r for r in asset["renditions"] if r["preset"] == "thumb-256"]
        thumbnail = download(thumb["url"])
        assert thumbnail[:3] == b"\xff\xd8\xff"
    # Everything lives under the var directory it was given: SQLite in WAL mode and the files.
    assert (tmp_path / "var" / "depot.sqlite3-wal").exists() or (
        tmp_path / "var" / "depot.sqlite3"
    ).exists()
    assert list((tmp_path / "var" / "media").rglob("thumb-256.jpeg"))
