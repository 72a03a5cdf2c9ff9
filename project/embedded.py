"""Embedded mode: a Celery worker and the beat schedule in threads of the server process.

Used only when the broker is kombu's in-memory transport, which cannot reach another process.
WorkController is used rather than the `celery worker` program, which installs signal handlers
(main thread only) and redirects stdout: neither belongs inside a web server.
"""

from __future__ import annotations

import logging
import threading

from celery.beat import EmbeddedService
from celery.worker import WorkController

from project.celery import app
from tasks.lanes import queues

logger = logging.getLogger(__name__)


def start_embedded_worker(concurrency: int = 2) -> None:
    worker = WorkController(
        app=app,
        hostname="embedded@depot",
        pool_cls="threads",
        concurrency=concurrency,
        queues=[queue.name for queue in queues()],
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        loglevel=logging.INFO,
    )
    threading.Thread(target=worker.start, name="depot-worker", daemon=True).start()
    beat = EmbeddedService(app, thread=True)
    beat.start()
    logger.info("embedded worker started (%d threads) with the beat schedule", concurrency)
