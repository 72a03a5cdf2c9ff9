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
"""

from __future__ import annotations

import hashlib
import json
import logging
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse

from domain.accounts.actor import Actor
from domain.jobs.selectors import event_sequences

logger = logging.getLogger(__name__)

CACHEABLE_ROOTS = frozenset({"asset", "assets", "collection", "collections"})
# Fields that read something no event announces, wherever they appear.
VOLATILE_FIELDS = frozenset({"jobs", "job", "events", "eventSequence", "apiTokens", "viewer"})


@lru_cache(maxsize=512)
def _cacheable_document(query: str, operation_name: str | None) -> bool:
    try:
        document = parse(query)
    except GraphQLError:
        return False
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [op for op in operations if op.name and op.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
        return False
    roots = operations[0].selection_set.selections
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


def request_material(request: HttpRequest) -> dict[str, Any] | None:
    """What identifies a cacheable request, or None if it must run."""
    if settings.DEPOT_READ_CACHE_SECONDS <= 0:
        return None
    if request.method == "POST":
        try:
            body = json.loads(request.body)
        except ValueError:
            return None
    elif request.method == "GET":
        body = {
            "query": request.GET.get("query"),
            "variables": request.GET.get("variables"),
            "operationName": request.GET.get("operationName"),
        }
    else:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return None
    if not _cacheable_document(body["query"], body.get("operationName")):
        return None
    return {
        "query": body["query"],
        "variables": body.get("variables"),
        "operationName": body.get("operationName"),
        "host": request.get_host(),
        "accept": request.headers.get("Accept", ""),
    }


def key_for(material: dict[str, Any], actor: Actor) -> str:
    """Runs in Django's sync world: one statement for the sequences."""
    workspaces = sorted(actor.permissions.items())
    sequences = sorted(event_sequences(workspace_ids=[ws for ws, _ in workspaces]).items())
    identity = json.dumps([material, workspaces, sequences], sort_keys=True, default=str)
    return "graphql-read:" + hashlib.sha256(identity.encode()).hexdigest()


def lookup(key: str) -> HttpResponse | None:
    try:
        hit = cache.get(key)
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
        cache.set(
            key,
            (response.content, response["Content-Type"]),
            timeout=settings.DEPOT_READ_CACHE_SECONDS,
        )
    except Exception:
        logger.warning("read cache unavailable", exc_info=True)
