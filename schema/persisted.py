"""Automatic persisted queries (Apollo's convention).

A client sends `extensions.persistedQuery = {version: 1, sha256Hash}` without the query; if the
hash is known the stored document runs, else PERSISTED_QUERY_NOT_FOUND asks the client to send
the query once with its hash, which is checked and stored (in Django's cache, Redis in services
mode, so every web process shares it).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from project.ratelimit import shared_cache

logger = logging.getLogger(__name__)


def _error(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


class PersistedQueries(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        persisted = _persisted(getattr(context, "operation_extensions", None))
        if persisted is not None:
            digest = persisted.get("sha256Hash")
            if persisted.get("version") != 1 or not isinstance(digest, str) or len(digest) != 64:
                raise _error("Unsupported persisted query.", "PERSISTED_QUERY_NOT_SUPPORTED")
            if context.query is None:
                stored = stored_query(digest.lower())
                if stored is None:
                    raise _error("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
                context.query = stored
            elif hashlib.sha256(context.query.encode()).hexdigest() != digest.lower():
                raise _error("The hash does not match the query.", "PERSISTED_QUERY_HASH_MISMATCH")
            store_query(digest.lower(), context.query)
        yield


def store_query(digest: str, query: str) -> None:
    """Keep (or keep longer) a query whose SHA-256 the caller has checked."""
    try:
        shared_cache().set(
            f"apq:{digest}", query, timeout=settings.DEPOT_PERSISTED_QUERY_TTL_SECONDS
        )
    except Exception:
        logger.warning("persisted query store unavailable", exc_info=True)


def stored_query(digest: str) -> str | None:
    """The query stored under this SHA-256 (lower-case hex), if any."""
    try:
        value = shared_cache().get(f"apq:{digest}")
    except Exception:
        # Without the store the client is asked for the full query, which still works.
        logger.warning("persisted query store unavailable", exc_info=True)
        return None
    return value if isinstance(value, str) else None


def _persisted(extensions: Any) -> dict[str, Any] | None:
    if not isinstance(extensions, dict):
        return None
    persisted = extensions.get("persistedQuery")
    return persisted if isinstance(persisted, dict) else None
