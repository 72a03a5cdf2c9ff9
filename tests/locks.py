"""Waiting, in a test, for another session to block on a row lock (pg_stat_activity)."""

from __future__ import annotations

import time

from django.db import connection


def wait_until_a_session_waits_for_a_lock(what: str, seconds: float = 10) -> None:
    """Return once some session of the test database waits for a lock; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError(f"{what} did not wait for a lock within {seconds} s")
