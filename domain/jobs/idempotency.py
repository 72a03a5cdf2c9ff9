"""Idempotency keys for mutations that start work.

The first request with a key runs and stores a reference to its result, in the same transaction
as its work. A repeat with the same operation and input returns that result and runs nothing; a
repeat with other input is IDEMPOTENCY_KEY_REUSED. Concurrent repeats are settled by the unique
constraint: the second insert waits for the first transaction, then finds its row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from domain.common.errors import DomainError
from domain.common.text import require_length
from domain.jobs.errors import IdempotencyConflict
from domain.jobs.models import IdempotencyKey

T = TypeVar("T")
MAX_KEY_LENGTH = 200


def fingerprint(operation: str, payload: Any) -> str:
    canonical = json.dumps([operation, payload], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def once(
    *,
    workspace_id: int,
    key: str,
    operation: str,
    payload: Any,
    run: Callable[[], T],
    remember: Callable[[T], dict[str, Any]],
    recall: Callable[[dict[str, Any]], T],
) -> T:
    if not key:
        # Malformed input, not a reuse: INVALID_INPUT (it was IDEMPOTENCY_KEY_REUSED).
        message = "An idempotency key cannot be empty."
        raise DomainError(message, code="INVALID_INPUT", path=["idempotencyKey"])
    require_length(key, limit=MAX_KEY_LENGTH, path=["idempotencyKey"])
    digest = fingerprint(operation, payload)
    with transaction.atomic():
        try:
            with transaction.atomic():
                row = IdempotencyKey.objects.create(
                    workspace_id=workspace_id, key=key, operation=operation, fingerprint=digest
                )
        except IntegrityError:
            existing = IdempotencyKey.objects.get(workspace_id=workspace_id, key=key)
            if existing.operation != operation or existing.fingerprint != digest:
                raise IdempotencyConflict(
                    "This idempotency key was used with a different request.",
                    path=["idempotencyKey"],
                ) from None
            assert existing.result is not None
            return recall(existing.result)
        result = run()
        row.result = remember(result)
        row.save(update_fields=["result"])
        return result


def idempotency_keys_prune() -> int:
    cutoff = timezone.now() - timedelta(hours=settings.DEPOT_IDEMPOTENCY_TTL_HOURS)
    return IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()[0]
