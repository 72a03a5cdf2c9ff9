"""project/celery.py: Celery reads Django's CELERY_* settings from a plain mapping, and a prefork
child hands the GIL over sooner (its publisher thread sends a job's events)."""

from __future__ import annotations

import sys

from django.conf import settings

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


def test_a_prefork_child_switches_threads_sooner() -> None:
    before = sys.getswitchinterval()
    try:
        celery._hand_over_the_gil_sooner()
        assert sys.getswitchinterval() == 0.0005
    finally:
        sys.setswitchinterval(before)
