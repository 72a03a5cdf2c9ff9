"""Not collected by the suite (no test_ prefix): tests/support/test_stray_connections.py runs
it in a pytest run of its own. Its one test leaves a thread holding a database connection."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

# A daemon, so that the run can end (and Postgres then ends its session).
_released = threading.Event()


@pytest.mark.django_db(transaction=True)
def test_leaves_a_thread_holding_a_connection() -> None:
    opened = threading.Event()

    def keep_a_connection() -> None:
        connection.ensure_connection()
        opened.set()
        _released.wait()

    threading.Thread(target=keep_a_connection, name="leaky-thread", daemon=True).start()
    assert opened.wait(10)
