"""The dashboard in headless Chromium against a real embedded Depot (frontend/tests/e2e.mjs).

Needs Debian's chromium and the dashboard's node_modules (`make test` installs both) and a built
frontend/dist. The server runs embedded (SQLite, local files, in-process worker) in a temporary
var dir, with every services-mode variable removed from its environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ManagedProcess, free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"
CHROMIUM = Path("/usr/bin/chromium")
SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DEPOT_FAILPOINTS")
E2E_TIMEOUT = 140  # the script gives up by itself after 100 s
# The smallest part the server allows: the script's ~10.6 MiB files then go in 3 parts.
MULTIPART_PART_BYTES = 5 * 1024 * 1024

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (make browser)"),
    pytest.mark.skipif(
        not (FRONTEND / "node_modules").is_dir(),
        reason="frontend/node_modules is missing (cd frontend && npm ci)",
    ),
]


def embedded_env(var_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in SERVICE_VARIABLES and not key.startswith("S3_")
    }
    env.update(
        DEPOT_VAR_DIR=str(var_dir),
        DEPOT_MULTIPART_PART_BYTES=str(MULTIPART_PART_BYTES),
        PYTHONUNBUFFERED="1",
    )
    return env


def test_dashboard_upload_flow(tmp_path: Path) -> None:
    index = FRONTEND / "dist" / "index.html"
    if not index.exists():
        pytest.fail("frontend/dist is missing: run `make frontend` (npm ci && npm run build)")
    newest_source = max(p.stat().st_mtime for p in (FRONTEND / "src").rglob("*") if p.is_file())
    if newest_source > index.stat().st_mtime:
        pytest.fail("frontend/dist is older than frontend/src: run `cd frontend && npm run build`")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH")

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = ManagedProcess(
        [sys.executable, "manage.py", "serve", "--port", str(port), "--demo"],
        log_dir=tmp_path,
        name="depot-embedded",
        env=embedded_env(tmp_path / "var"),
        cwd=ROOT,
    )
    with server:
        wait_for_http(f"{base_url}/healthz/", 60, process=server)
        screenshot = tmp_path / "dashboard.png"
        try:
            result = subprocess.run(
                [node, "tests/e2e.mjs", base_url, "demo", "demo"],
                cwd=FRONTEND,
                env={**os.environ, "SCREENSHOT": str(screenshot)},
                capture_output=True,
                text=True,
                timeout=E2E_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            partial = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout
            pytest.fail(f"e2e.mjs did not exit within {E2E_TIMEOUT}s:\n{partial or ''}")
        output = result.stdout + result.stderr
        assert result.returncode == 0, (
            f"e2e.mjs exited {result.returncode}:\n{output}\n"
            f"--- server log ({server.log_path}) ---\n{server.log_tail(60)}"
        )
    print(output)
    assert screenshot.exists(), "the e2e script saved no screenshot"
