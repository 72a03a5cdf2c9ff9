"""The outbox of object removals: no object outlives the rows naming it, and none a row names
is deleted.

A change that drops the row naming an object (a rendition no preset makes any more, a
rendition whose preset changed format, an abandoned upload's asset) records the object's key
here in the same transaction (`schedule`), and deletes the object once that has committed
(`remove`); a worker killed in between, or a store that refuses, leaves the key here, and the
sweep (`object_removals_sweep`, beat's `remove-objects` on the maintenance lane) deletes it
later, with back-off. Before, the object was deleted after the commit and nothing remembered it:
a stop in between left it in the bucket for ever, since an asset's deletion deletes the objects
its rows name.

Keys come back: a rendition's is fixed per asset and preset (a rerun overwrites it), so a
preset dropped and added again writes the same key that a removal may still be pending for.
Two rules keep such an object: a removal deletes an object only if no row names its key, read
while it holds the removal's row lock, across the store's deletion; and a writer of a key that
may come back claims it before it writes (`claim`: the row's due time an hour ahead, taken under
the same lock, so it waits for a deletion under way), then drops the claim in the transaction
that records the row naming it (`release`, which tells it if the claim was lost meanwhile). A
writer stopped between its write and its row leaves the claim, and the object, unnamed, goes
an hour later.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import groupby
from operator import itemgetter

from botocore.exceptions import BotoCoreError, ClientError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from domain.assets import storage
from domain.assets.models import Asset, ObjectRemoval, Rendition

logger = logging.getLogger(__name__)

# A writer's claim on a key lasts this long: far more than storing one object takes.
CLAIM_SECONDS = 3600
# A refused removal is tried again after 1 minute, then 2, 4... up to an hour, for ever (a
# refusal is logged each time, at ERROR from the fifth).
RETRY_FIRST_SECONDS = 60
RETRY_MAX_SECONDS = 3600
# Keys per transaction of the sweep (one DeleteObjects request), and transactions per sweep.
BATCH = 1000
SWEEP_BATCHES = 10
# What a store's refusal looks like (boto3, django-storages, local files).
STORE_ERRORS = (BotoCoreError, ClientError, storage.ObjectsKept, OSError)


class ClaimLost(Exception):
    """A writer's claim on a key was removed (its object deleted) before it recorded its row:
    the object it stored may be gone, so it must not record a row naming it."""


def retry_delay(attempts: int) -> timedelta:
    """The wait after the `attempts`-th refusal."""
    return timedelta(
        seconds=min(RETRY_FIRST_SECONDS * 2 ** min(attempts - 1, 16), RETRY_MAX_SECONDS)
    )


def schedule(keys: Sequence[str]) -> None:
    """In the transaction that drops the rows naming `keys`: delete their objects once it has
    committed (`remove`, or the sweep). A key a writer has claimed keeps its claim's time."""
    _require_transaction("schedule")
    if keys:
        now = timezone.now()
        ObjectRemoval.objects.bulk_create(
            [ObjectRemoval(key=key, due_at=now) for key in keys], ignore_conflicts=True
        )


def give_up(keys: Sequence[str]) -> None:
    """In a writer's transaction that will not record the row naming `keys` after all: their
    claims are due at once."""
    _require_transaction("give_up")
    _upsert(keys, timezone.now())


def claim(keys: Sequence[str]) -> None:
    """Before storing objects at `keys`, in a transaction of its own (committed before the
    write): a removal of them that is under way finishes first, and none starts for an hour."""
    with transaction.atomic():
        _upsert(keys, timezone.now() + timedelta(seconds=CLAIM_SECONDS))


def release(keys: Sequence[str]) -> None:
    """In the transaction that records the rows naming `keys`, after their objects were stored
    under a claim: the claims go. ClaimLost if one was gone (its object was removed)."""
    _require_transaction("release")
    wanted = set(keys)
    # Waits for a removal under way (it holds the row): then finds the row gone.
    deleted, _ = ObjectRemoval.objects.filter(key__in=wanted).delete()
    if deleted != len(wanted):
        raise ClaimLost(f"A claim on {sorted(wanted)[0]}... was lost; its object may be gone.")


def remove(keys: Sequence[str]) -> int:
    """Delete now the objects whose removal is due among `keys`, once the transaction that
    scheduled them has committed; how many rows went. A store that refuses is logged and its
    keys are tried again later (by the sweep); anything else raises, leaving them due."""
    if not keys:
        return 0
    now = timezone.now()
    return _remove_batch(ObjectRemoval.objects.filter(key__in=keys, due_at__lte=now), now)


def object_removals_sweep() -> dict[str, int]:
    """Delete the objects whose removal is due (left by a stopped worker, refused by the store,
    or claimed by a writer that never recorded its row), a batch per transaction; `removed`
    counts the keys done with, `left` those still due (a next batch, or a refusal)."""
    now = timezone.now()
    due = ObjectRemoval.objects.filter(due_at__lte=now).order_by("due_at")
    removed = 0
    for _ in range(SWEEP_BATCHES):
        done = _remove_batch(due, now)
        removed += done
        if done < BATCH:
            break
    return {"removed": removed, "left": due.count()}


def _remove_batch(removals: QuerySet[ObjectRemoval], now: datetime) -> int:
    """Delete the objects of a batch of `removals` not named by any row, holding their rows'
    locks across the store's deletion (a claim waits for it); then the rows go, or, if the store
    refused, wait for their next try. How many rows went."""
    with transaction.atomic():
        rows = list(
            removals.select_for_update(skip_locked=True).values_list("pk", "key", "attempts")[
                :BATCH
            ]
        )
        if not rows:
            return 0
        keys = [key for _, key, _ in rows]
        named = set(
            Rendition.objects.filter(storage_key__in=keys).values_list("storage_key", flat=True)
        )
        named |= set(
            Asset.objects.filter(storage_key__in=keys).values_list("storage_key", flat=True)
        )
        doomed = [row for row in rows if row[1] not in named]
        try:
            storage.delete_objects([key for _, key, _ in doomed])
        except STORE_ERRORS as error:
            _retry_later(doomed, now, error)
            ObjectRemoval.objects.filter(
                pk__in=[pk for pk, key, _ in rows if key in named]
            ).delete()
            return len(rows) - len(doomed)
        ObjectRemoval.objects.filter(pk__in=[pk for pk, _, _ in rows]).delete()
        return len(rows)


def _retry_later(rows: list[tuple[int, str, int]], now: datetime, error: Exception) -> None:
    message = f"{type(error).__name__}: {error}"[:1000]
    for attempts, group in groupby(sorted(rows, key=itemgetter(2)), key=itemgetter(2)):
        ids = [pk for pk, _, _ in group]
        ObjectRemoval.objects.filter(pk__in=ids).update(
            attempts=attempts + 1, due_at=now + retry_delay(attempts + 1), last_error=message
        )
    most = max(attempts for _, _, attempts in rows) + 1
    logger.log(
        logging.ERROR if most >= 5 else logging.WARNING,
        "object removals: the store refused %d object(s) (try %d, first %s): %s",
        len(rows),
        most,
        rows[0][1],
        message,
    )


def _upsert(keys: Sequence[str], due_at: datetime) -> None:
    if keys:
        ObjectRemoval.objects.bulk_create(
            [ObjectRemoval(key=key, due_at=due_at) for key in keys],
            update_conflicts=True,
            unique_fields=["key"],
            update_fields=["due_at"],
        )


def _require_transaction(what: str) -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(f"object_removals.{what} must run in the transaction of the change")
