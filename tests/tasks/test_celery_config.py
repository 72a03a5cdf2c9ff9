"""project/celery.py: Celery reads Django's CELERY_* settings from a plain mapping, and a prefork
child hands the GIL over sooner (its publisher thread sends a job's events) and keeps its main
thread's database connection from one job to the next; the worker's start-up heap is frozen out
of the cycle collector's reach before its pool forks."""

from __future__ import annotations

import gc
import sys
import threading
from types import SimpleNamespace
from unittest import mock

import pytest
from celery.signals import celeryd_after_setup
from django.conf import settings
from django.db import close_old_connections, connection, connections
from django.db.backends.signals import connection_created

from project import celery


def test_the_mapping_holds_every_celery_setting_as_django_has_it() -> None:
    mapping = celery.DjangoCelerySettings()
    names = {name for name in dir(settings) if name.startswith("CELERY_")}
    assert set(mapping) == names
    assert len(mapping) == len(names)
    for name in names:
        assert mapping[name] == getattr(settings, name), name


def test_celery_sees_the_same_configuration() -> None:
    conf = celery.app.conf
    assert conf.broker_url == settings.CELERY_BROKER_URL
    assert conf.task_acks_late is settings.CELERY_TASK_ACKS_LATE is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == settings.CELERY_WORKER_PREFETCH_MULTIPLIER
    assert conf.broker_transport_options == settings.CELERY_BROKER_TRANSPORT_OPTIONS
    assert conf.task_default_queue == settings.CELERY_TASK_DEFAULT_QUEUE
    assert conf.task_ignore_result is True
    assert conf.task_always_eager is False  # not set in Django: Celery's default
    assert conf.db_reuse_max == settings.CELERY_DB_REUSE_MAX


def test_the_worker_freezes_its_start_up_heap_when_set_up() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        # What `celery worker` sends once set up, before its pool starts (and forks).
        celeryd_after_setup.send(sender="worker@test", instance=None, conf=celery.app.conf)
        # Django, Celery and Depot's modules, the schema...: out of every full collection.
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()


def test_a_prefork_child_switches_threads_sooner() -> None:
    before = sys.getswitchinterval()
    try:
        celery._hand_over_the_gil_sooner()
        assert sys.getswitchinterval() == 0.0005
    finally:
        sys.setswitchinterval(before)


def test_a_prefork_childs_main_thread_keeps_its_connection_between_jobs() -> None:
    on_main = SimpleNamespace(close_at=123.0)
    celery.keep_on_the_main_thread(sender=None, connection=on_main)
    assert on_main.close_at is None
    elsewhere = SimpleNamespace(close_at=123.0)
    thread = threading.Thread(
        target=celery.keep_on_the_main_thread, kwargs={"sender": None, "connection": elsewhere}
    )
    thread.start()
    thread.join()
    assert elsewhere.close_at == 123.0  # the lease renewer's goes back as before


@pytest.mark.django_db(transaction=True)
def test_the_kept_connection_survives_close_old_connections_unless_it_broke() -> None:
    connection.close()
    connection_created.connect(celery.keep_on_the_main_thread, weak=False)
    try:
        connection.ensure_connection()
        kept = connection.connection
        close_old_connections()  # what run_job does after a job and before the next
        assert connection.connection is kept
        connection.errors_occurred = True
        with mock.patch.object(connections["default"], "is_usable", return_value=False):
            close_old_connections()
        assert connection.connection is None
    finally:
        connection_created.disconnect(celery.keep_on_the_main_thread)
        connection.close()
