"""Job lanes. Importable before Django's app registry is ready (Celery wires queues early)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Lane(models.TextChoices):
    """Each lane is its own broker queue, so bulk work never delays interactive work."""

    INTERACTIVE = "interactive"
    BULK = "bulk"
    MAINTENANCE = "maintenance"

    @property
    def queue(self) -> str:
        # The prefix lets several deployments (or test runs) share one broker.
        return f"{settings.DEPOT_QUEUE_PREFIX}.{self.value}"
