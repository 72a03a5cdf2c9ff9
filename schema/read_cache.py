"""A read cache for asset and collection queries, keyed on the workspaces' event sequences.

Every change to assets, collections and renditions records a durable event in the transaction
that makes it (the project's one rule for writes), which moves the workspace's event sequence.
A response computed for (the request, the caller's permissions, the sequences of the caller's
workspaces) therefore stays right until one of those sequences moves, and is keyed on them: a
change makes the next request miss, with no invalidation step to forget. A short TTL bounds the
rest: presigned links in a response (they expire in minutes) and the few rows written before the
event that announces them (renditions, just before asset.ready).

Only queries whose root fields all read assets and collections are cached; anything about jobs
(progress is not a durable event), events, tokens or the viewer always runs.

The key is the query's SHA-256 (so a persisted query sent by its hash alone shares the entry of
its full text), the variables, the operation name, the host, the Accept header, the caller's
permission per workspace and those workspaces' event sequences. Who is calling is never cached
here: the view checks the rate limits and reads the token from the database on every cacheable
request, hit or miss (schema/http.py), and a bearer token's statement returns its workspace's
sequence too. (Other requests may reuse a token's lookup: domain/accounts/credentials.py.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from graphql import FieldNode

from domain.accounts.actor import Actor
from domain.jobs.selectors import event_sequences
from project.ratelimit import shared_cache
from schema import persisted
from schema.operations import query_operation, request_params

logger = logging.getLogger(__name__)

CACHEABLE_ROOTS = frozenset({"asset", "assets", "collection", "collections"})
# Fields that read something no event announces, wherever they appear.
VOLATILE_FIELDS = frozenset({"jobs", "job", "events", "eventSequence", "apiTokens", "viewer"})


@lru_cache(maxsize=512)
def _cacheable_document(query: str, operation_name: str | None) -> bool:
    found = query_operation(query, operation_name)
    if found is None:
        return False
    document, operation = found
    roots = operation.selection_set.selections
    if not all(isinstance(s, FieldNode) and s.name.value in CACHEABLE_ROOTS for s in roots):
        return False
    return not any(name in VOLATILE_FIELDS for name in _field_names(document))


def _field_names(node: Any) -> set[str]:
    names: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, FieldNode):
            names.add(current.name.value)
        for attribute in ("definitions", "selection_set", "selections"):
            child = getattr(current, attribute, None)
            if child is None:
                continue
            stack.extend(child if isinstance(child, (list, tuple)) else [child])
    return names


@dataclass(frozen=True)
class Material:
    """What identifies a cacheable request. `query` is None for a persisted query sent by hash
    alone that this process has not seen yet; `resolve()` finds it (in the admission hop)."""

    query: str | None
    digest: str
    variables: Any
    operation_name: str | None
    host: str
    accept: str
    # The request sent the query with its hash: on a cache hit the persisted-query store must
    # still learn it, as the extension would have.
    register: bool = False

    def resolve(self) -> Material | None:
        """This material with its query text known and checked as cacheable, or None."""
        if self.query is not None:
            return self
        query = persisted.stored_query(self.digest)
        if query is None or hashlib.sha256(query.encode()).hexdigest() != self.digest:
            return None
        if not _cacheable_document(query, self.operation_name):
            return None
        _remember(self.digest, query)
        return replace(self, query=query)


# Queries this process has seen, by their SHA-256, so that a persisted query sent by its hash
# alone (APQ) finds its text without a round trip. Only hashes computed here go in.
_KNOWN: OrderedDict[str, str] = OrderedDict()
_KNOWN_MAX = 512
_KNOWN_LOCK = threading.Lock()


def _remember(digest: str, query: str) -> None:
    with _KNOWN_LOCK:
        _KNOWN[digest] = query
        _KNOWN.move_to_end(digest)
        while len(_KNOWN) > _KNOWN_MAX:
            _KNOWN.popitem(last=False)


def _known(digest: str) -> str | None:
    with _KNOWN_LOCK:
        return _KNOWN.get(digest)


def request_material(request: HttpRequest) -> Material | None:
    """What identifies a cacheable request, or None if it must run. Runs on the event loop, so
    it never waits on anything; a hash-only persisted query unknown here is resolved later."""
    if settings.DEPOT_READ_CACHE_SECONDS <= 0:
        return None
    body = request_params(request)
    if body is None:
        return None
    query, operation_name = body.get("query"), body.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        return None
    persisted_hash = _persisted_hash(body.get("extensions"))
    if query is None and persisted_hash is not None:
        known = _known(persisted_hash)
        if known is None:
            # Resolved (and checked) in the admission hop, from the persisted-query store.
            return Material(
                None,
                persisted_hash,
                body.get("variables"),
                operation_name,
                request.get_host(),
                request.headers.get("Accept", ""),
            )
        query = known
    if not isinstance(query, str) or not _cacheable_document(query, operation_name):
        return None
    digest = hashlib.sha256(query.encode()).hexdigest()
    if persisted_hash is not None and persisted_hash != digest:
        return None  # the extension answers PERSISTED_QUERY_HASH_MISMATCH
    _remember(digest, query)
    return Material(
        query,
        digest,
        body.get("variables"),
        operation_name,
        request.get_host(),
        request.headers.get("Accept", ""),
        register=persisted_hash is not None and "query" in body,
    )


def _persisted_hash(extensions: Any) -> str | None:
    if not isinstance(extensions, dict):
        return None
    persisted_query = extensions.get("persistedQuery")
    if not isinstance(persisted_query, dict) or persisted_query.get("version") != 1:
        return None
    digest = persisted_query.get("sha256Hash")
    if not isinstance(digest, str) or len(digest) != 64:
        return None
    return digest.lower()


def key_for(material: Material, actor: Actor, sequences: dict[int, int] | None = None) -> str:
    """Runs in Django's sync world. `sequences` are the event sequences of the actor's
    workspaces when the caller already has them (the bearer lookup reads its workspace's in
    the same statement); otherwise one statement reads them."""
    workspaces = sorted(actor.permissions.items())
    if sequences is None or set(sequences) != {ws for ws, _ in workspaces}:
        sequences = event_sequences(workspace_ids=[ws for ws, _ in workspaces])
    identity = json.dumps(
        [
            material.digest,
            material.variables,
            material.operation_name,
            material.host,
            material.accept,
            workspaces,
            sorted(sequences.items()),
        ],
        sort_keys=True,
        default=str,
    )
    return "graphql-read:" + hashlib.sha256(identity.encode()).hexdigest()


def lookup(key: str) -> HttpResponse | None:
    try:
        hit = shared_cache().get(key)
    except Exception:
        logger.warning("read cache unavailable", exc_info=True)
        return None
    if not isinstance(hit, tuple):
        return None
    content, content_type = hit
    response = HttpResponse(content, content_type=content_type)
    response["X-Depot-Cache"] = "hit"
    return response


def store(key: str, response: HttpResponse) -> None:
    if response.status_code != 200 or b'"errors"' in response.content:
        return
    try:
        shared_cache().set(
            key,
            (response.content, response["Content-Type"]),
            timeout=settings.DEPOT_READ_CACHE_SECONDS,
        )
    except Exception:
        logger.warning("read cache unavailable", exc_info=True)
