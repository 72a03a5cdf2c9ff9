"""The stray-connection guard (tests/stray_connections.py) names a thread that keeps a connection
to the test database past the tests, before the database is dropped."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"), reason="Postgres")
def test_a_thread_still_holding_a_connection_is_named_before_the_drop() -> None:
    # A run of its own, on a database of its own (pytest-django makes test_<name>).
    name = f"depot_guard_{uuid.uuid4().hex[:10]}"
    database = settings.DATABASES["default"]
    server = f"postgresql://{database['USER']}@{database['HOST']}:{database['PORT'] or 5432}"
    env = {**os.environ, "DATABASE_URL": f"{server}/{name}"}
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-W",
                "default",
                "tests/support/leaky_connection_case.py",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        # The drop at the end of that run failed, as it should have: the session was in use.
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "test_{name}" WITH (FORCE)')
    output = run.stdout + run.stderr
    assert "1 passed" in output, output
    assert "a database session outlived the tests" in output, output
    assert "taken by thread leaky-thread (alive: True)" in output, output
    assert "keep_a_connection" in output, output  # the stack that took it
