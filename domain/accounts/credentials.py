"""API token lookups kept in process, and exact: a credentials epoch says when to forget them.

Every request with a bearer token needs its token, user and role. They change rarely, so a
process keeps what the bearer statement read, per secret, and reuses it while nothing that
could change the answer has happened:

- every change to a token, a membership or a user (save or delete, through a service or not:
  the receivers below) sets a new random *epoch* in the shared cache once it commits;
- a request reads the epoch in the round trip it already makes for its rate limits
  (`project.ratelimit.hit_all`), and a kept record counts only if it was read under that epoch;
- a record is also never older than DEPOT_TOKEN_CACHE_SECONDS (a bound for what the receivers
  cannot see: a bulk `update()` or raw SQL on those tables), and expiry and `is_active` are
  checked on every use.

So a revoked token, a removed member or a changed role takes effect on the next request, as
without the cache. When the epoch is unknown (the cache store is down) the statement runs as
before; a store that restarted empty gets a new random epoch, which matches no kept record.
The record is read after the epoch, so a change that commits in between is either in the
record or moves the epoch past it. A change made with `update()` or raw SQL must call
`credentials_changed()`.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from domain.accounts.models import ApiToken, Membership, User
from domain.accounts.selectors import Bearer, BearerRecord, bearer_admit, bearer_record
from domain.accounts.tokens import hash_secret
from realtime import publish

logger = logging.getLogger(__name__)

EPOCH_KEY = "credentials:epoch"
_MAX_ENTRIES = 4096


@dataclass(frozen=True)
class _Kept:
    epoch: int
    read_at: float  # time.monotonic()
    record: BearerRecord


_kept: dict[str, _Kept] = {}
_kept_lock = threading.Lock()
# Counts credentials_changed() calls in this process (any thread): a caller that compares it
# before and after its own work knows whether anything it did may have changed someone's access.
_changes = 0


def bearer_for(*, secret: str, epoch: int | None, need_sequence: bool = False) -> Bearer:
    """The caller behind a secret, as `bearer_lookup` gives it, from the kept record when
    `epoch` (the current one, read by the caller) allows. `need_sequence` asks for the
    workspace's event sequence as of now, which only the statement has."""
    ttl = settings.DEPOT_TOKEN_CACHE_SECONDS
    if epoch is None or ttl <= 0 or need_sequence:
        return _read_and_keep(secret, epoch, ttl)
    key = hash_secret(secret)
    kept = _kept.get(key)
    if kept is None or kept.epoch != epoch or time.monotonic() - kept.read_at > ttl:
        return _read_and_keep(secret, epoch, ttl, key)
    bearer, record = bearer_admit(kept.record)
    if record is not kept.record:  # marked as used just now
        _keep(key, _Kept(epoch, kept.read_at, record))
    return bearer


def _read_and_keep(secret: str, epoch: int | None, ttl: int, key: str | None = None) -> Bearer:
    read_at = time.monotonic()
    bearer, record = bearer_admit(bearer_record(secret=secret))
    if epoch is not None and ttl > 0:
        _keep(key or hash_secret(secret), _Kept(epoch, read_at, record))
    return bearer


def _keep(key: str, kept: _Kept) -> None:
    with _kept_lock:
        if key not in _kept and len(_kept) >= _MAX_ENTRIES:
            _kept.pop(next(iter(_kept)))  # the oldest kept
        _kept[key] = kept


def forget_all() -> None:
    """Drops every kept record of this process (the next request of each token reads it)."""
    with _kept_lock:
        _kept.clear()


def credentials_changed() -> None:
    """Call after changing tokens, memberships or users in a way the receivers below cannot
    see (a bulk `update()`, raw SQL): every process reads them again on their next use.

    This process forgets at once as well: a request that reads the old rows again before the
    commit keeps them under the old epoch, which the commit then moves."""
    global _changes
    with _kept_lock:
        _changes += 1
    forget_all()
    if not _epoch_move_pending():
        transaction.on_commit(_move_epoch)


def _epoch_move_pending() -> bool:
    """Whether this transaction will move the epoch already: one move after its commit covers
    every change in it (a cascade deleting a workspace's tokens and members is one SET, not one
    per row). Outside a transaction on_commit runs at once, so nothing is ever pending there."""
    connection = transaction.get_connection()
    return connection.in_atomic_block and any(
        callback is _move_epoch for _, callback, _ in connection.run_on_commit
    )


def changes_seen() -> int:
    """How many credential changes this process has seen so far (see `credentials_changed`)."""
    return _changes


def _move_epoch() -> None:
    forget_all()
    try:
        cache.set(EPOCH_KEY, secrets.randbits(62), timeout=None)
    except Exception:
        # Other processes keep their records until DEPOT_TOKEN_CACHE_SECONDS pass.
        logger.error("could not move the credentials epoch", exc_info=True)


# Bookkeeping saves that change no one's access.
_NOT_A_CHANGE: dict[type, set[str]] = {ApiToken: {"last_used_at"}, User: {"last_login"}}


def _changed(sender: type, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    ignored = _NOT_A_CHANGE.get(sender)
    if ignored and update_fields is not None and set(update_fields) <= ignored:
        return
    credentials_changed()
    if sender is User:
        # A password changed (its sessions end) or the user was deactivated: their open
        # sockets check again now, not at their next periodic check.
        publish.credentials_changed_after_commit(instance.pk)


def _logged_out(sender: Any, user: Any = None, **kwargs: Any) -> None:
    if user is not None and user.pk is not None:
        publish.credentials_changed_after_commit(user.pk)  # its sockets of that session close


def connect_receivers() -> None:
    for model in (ApiToken, Membership, User):
        post_save.connect(_changed, sender=model, dispatch_uid=f"credentials.{model.__name__}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"credentials.{model.__name__}-")
    user_logged_out.connect(_logged_out, dispatch_uid="credentials.logged_out")
