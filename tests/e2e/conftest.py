"""Real processes: uvicorn and `celery worker` against the suite's Postgres, Redis and S3.

The processes use pytest-django's test database, so these tests need `transactional_db`
(committed rows); every process is stopped before the database is flushed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from domain.accounts.models import TokenScope, User, Workspace
from domain.accounts.services import api_token_create, workspace_create
from domain.assets.models import Collection
from tests.support.processes import ManagedProcess, free_port, wait_for, wait_for_http

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Kept out of the child's environment so that each mode is exactly what its test says.
SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DEPOT_FAILPOINTS")


@dataclass
class Tenant:
    user: User
    workspace: Workspace
    collection: Collection
    token: str


@pytest.fixture
def tenant(transactional_db: None) -> Tenant:
    user = User.objects.create_user(username="integrator", password="pw-for-tests")
    workspace = workspace_create(name="Live", slug="live", owner=user)
    collection = Collection.objects.create(workspace=workspace, name="Uploads")
    _, token = api_token_create(
        workspace=workspace, user=user, name="e2e", scopes=[TokenScope.READ, TokenScope.WRITE]
    )
    return Tenant(user=user, workspace=workspace, collection=collection, token=token)


@pytest.fixture
def make_user_e2e(transactional_db: None) -> Callable[..., User]:
    def make(username: str) -> User:
        return User.objects.create_user(username=username, password="pw-for-tests")

    return make


@pytest.fixture
def service_env(transactional_db: None, tmp_path: Path) -> dict[str, str]:
    """The environment of a services-mode process, pointed at this test's database."""
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    name = connection.settings_dict["NAME"]
    env.update(
        {
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}",
            "REDIS_URL": os.environ["REDIS_URL"],
            "DEPOT_VAR_DIR": str(tmp_path / "var"),
            # Like every process of one deployment, they share the secret (sessions, signed links).
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            # Short enough that a lost worker is noticed within a test, long enough to renew.
            "DEPOT_JOB_LEASE_SECONDS": "3",
            "DEPOT_SWEEP_INTERVAL_SECONDS": "0.5",
            "DEPOT_DISPATCH_GRACE_SECONDS": "2",
            "DATABASE_POOL_MAX": "4",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def start_web(service_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., str]]:
    started: list[ManagedProcess] = []

    def start(**extra_env: str) -> str:
        port = free_port()
        process = ManagedProcess(
            [
                str(BIN / "uvicorn"),
                "project.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--lifespan",
                "off",
            ],
            log_dir=tmp_path,
            name="web",
            env={**service_env, **extra_env},
            cwd=ROOT,
        ).start()
        started.append(process)
        url = f"http://127.0.0.1:{port}/"
        wait_for_http(url + "healthz/", 30, process=process)
        return url

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def start_worker(
    service_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., ManagedProcess]]:
    started: list[ManagedProcess] = []

    def start(*, beat: bool = True, concurrency: int = 2, **extra_env: str) -> ManagedProcess:
        argv = [
            str(BIN / "celery"),
            "-A",
            "project",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            str(concurrency),
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"w{len(started)}@%h",
        ]
        if beat:
            argv += ["--beat", "--schedule", str(tmp_path / f"beat-{len(started)}")]
        process = ManagedProcess(
            argv, log_dir=tmp_path, name="worker", env={**service_env, **extra_env}, cwd=ROOT
        ).start()
        started.append(process)
        wait_for(
            lambda: "ready." in process.log_tail(200),
            60,
            what="celery worker ready",
            process=process,
        )
        return process

    yield start
    for process in started:
        process.stop()


BROKERS = {
    "redis": lambda: os.environ["REDIS_URL"],
    "rabbitmq": lambda: os.environ["TEST_RABBITMQ_URL"],
}


@pytest.fixture
def broker_url(broker: str) -> Iterator[str]:
    """The URL of the broker a test is parametrized with (`broker`: a name of BROKERS).

    RabbitMQ keeps a queue after its consumers are gone, and a worker or a web process still
    running declares it again: this run's queues are deleted only once they have stopped. A test
    asks for this fixture before start_web and start_worker, so it is torn down after them."""
    url = BROKERS[broker]()
    yield url
    if broker == "rabbitmq":
        _delete_queues(url)


def _delete_queues(broker_url: str) -> None:
    """Delete this run's queues, and check that they are gone (a process still running, or one
    left behind, would have declared them again)."""
    from amqp.exceptions import NotFound
    from kombu import Connection

    from tasks.lanes import queues

    with Connection(broker_url) as conn:
        for queue in queues():
            queue(conn.default_channel).delete()
        for queue in queues():
            channel: Any = conn.channel()  # a passive declare of a missing queue closes it
            with pytest.raises(NotFound):
                channel.queue_declare(queue=queue.name, passive=True)
