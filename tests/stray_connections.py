"""A guard for the test database's teardown: which thread still held a database connection.

Django drops the test database at the end of the run and cannot while another session uses it
(pytest then warns that it "is being accessed by other users" and leaves the database behind).
Connections are per thread: a thread of the test process that opened one and never gave it back
(a request thread, asgiref's sync thread, a job's helper thread) is that session. This records,
for every connection handed out, the thread and the stack that took it, and before the database
is dropped names the ones whose Postgres session is still open.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
import warnings
from typing import Any

import psycopg
from django.db import connection
from django.db.backends.signals import connection_created

# How long sessions the pool just closed may take to leave pg_stat_activity.
ENDING_SESSIONS_SECONDS = 3.0

_taken_by: dict[int, tuple[str, str]] = {}  # Postgres backend pid -> (thread, stack)
_checked = threading.Event()  # report() ran: the database is dropped next
_checked_database = [""]  # the test database's name, once checked


def _record(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor != "postgresql":
        return
    pid = connection.connection.info.backend_pid
    # The frames that say who: ours and the tests', not Django's or the standard library's.
    frames = [f for f in traceback.extract_stack()[:-2] if "/site-packages/" not in f.filename]
    stack = "".join(traceback.format_list(frames[-8:]))
    _taken_by[pid] = (threading.current_thread().name, stack)
    if _checked.is_set() and connection.connection.info.dbname == _checked_database[0]:
        # Too late for report(): the database is about to be dropped. Said at once, past
        # pytest's capture, so that the drop's "being accessed by other users" has a name.
        print(
            f"a database connection was opened after the stray-connection check, by thread "
            f"{threading.current_thread().name}:\n{stack}",
            file=sys.__stderr__,
            flush=True,
        )


def start() -> None:
    connection_created.connect(_record, dispatch_uid="tests-stray-connections")


def report() -> list[str]:
    """Describe the sessions on the test database that closing this thread's connection and
    Django's pool leaves open (none: an empty list)."""
    if connection.vendor != "postgresql":
        return []
    # By now the settings name the test database (Django switched them to it when it made it).
    # Asking Django for the test database's name instead would prefix "test_" once more, and
    # this check would never run (as it did not, until tests/support/test_stray_connections.py).
    test_name = connection.settings_dict["NAME"]
    if not str(test_name).startswith("test_"):
        return []  # no test needed the database, so none was made
    connection.close()
    # The pool's idle connections are no stray ones (Django closes the pool before the drop).
    connection.close_pool()  # type: ignore[attr-defined]
    _checked_database[0] = test_name
    _checked.set()
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"],
        port=settings["PORT"] or None,
        autocommit=True,
    ) as own:
        # Closing the pool only asks its sessions to end: each server process then exits on its
        # own time, and until it has, pg_stat_activity still lists it (a clean-clone CI run
        # named a pooled connection, idle after its COMMIT, that close_pool() had just closed).
        # A stray session stays; one that is ending is gone within moments.
        deadline = time.monotonic() + ENDING_SESSIONS_SECONDS
        while True:
            others = own.execute(
                "SELECT pid, state, left(query, 200) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
            if not others or time.monotonic() > deadline:
                break
            time.sleep(0.02)
    alive = {t.name for t in threading.enumerate()}
    lines = []
    for pid, state, query in others:
        thread, stack = _taken_by.get(pid, ("(not taken through Django)", ""))
        lines.append(
            f"session {pid} ({state}, last query {query!r}) was taken by thread {thread} "
            f"(alive: {thread in alive}):\n{stack}"
        )
    return lines


def warn() -> None:
    """A warning per stray session (pytest shows it in the run's warnings summary)."""
    for line in report():
        warnings.warn(f"a database session outlived the tests: {line}", stacklevel=1)
