"""How failures reach clients.

Expected failures (DomainError) become typed `UserError`s in mutation payloads, or GraphQL
errors with `extensions.code` on queries and subscriptions. Anything else is masked as
"Unexpected error" with a request id that is also in the server log, never a traceback or SQL.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from enum import Enum
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.extensions import MaskErrors, SchemaExtension

from domain.common.errors import DomainError, NotFound, Unauthenticated

logger = logging.getLogger("depot.graphql")


@strawberry.enum(description="Stable codes of expected errors; clients may switch on them.")
class ErrorCode(Enum):
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    INVALID_TOKEN = "INVALID_TOKEN"  # noqa: S105 (an error code)
    INVALID_STATE = "INVALID_STATE"
    NAME_TAKEN = "NAME_TAKEN"
    SLUG_TAKEN = "SLUG_TAKEN"
    ASSET_TOO_LARGE = "ASSET_TOO_LARGE"
    INVALID_UPLOAD = "INVALID_UPLOAD"
    UPLOAD_NOT_FOUND = "UPLOAD_NOT_FOUND"
    UPLOAD_SIZE_MISMATCH = "UPLOAD_SIZE_MISMATCH"
    UPLOAD_CHECKSUM_MISMATCH = "UPLOAD_CHECKSUM_MISMATCH"
    UPLOAD_PARTS_MISSING = "UPLOAD_PARTS_MISSING"
    UPLOAD_PART_MISMATCH = "UPLOAD_PART_MISMATCH"
    ASSET_NOT_READY = "ASSET_NOT_READY"
    RENDITION_NOT_SUPPORTED = "RENDITION_NOT_SUPPORTED"
    KIND_NOT_ALLOWED = "KIND_NOT_ALLOWED"
    # Verdicts of the media library on a file's bytes (domain.assets.media.Verdict).
    EMPTY_FILE = "EMPTY_FILE"
    CONTENT_TYPE_MISMATCH = "CONTENT_TYPE_MISMATCH"
    ACTIVE_CONTENT = "ACTIVE_CONTENT"
    UNSUPPORTED_TYPE = "UNSUPPORTED_TYPE"
    CORRUPT_FILE = "CORRUPT_FILE"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    CURSOR_EXPIRED = "CURSOR_EXPIRED"
    CURSOR_INVALID = "CURSOR_INVALID"
    JOB_FAILED = "JOB_FAILED"
    INVALID_INPUT = "INVALID_INPUT"
    LAST_OWNER = "LAST_OWNER"
    USER_NOT_FOUND = "USER_NOT_FOUND"
    SUBSCRIBER_TOO_SLOW = "SUBSCRIBER_TOO_SLOW"
    ASSET_DELETED = "ASSET_DELETED"
    STORAGE_ERROR = "STORAGE_ERROR"


@strawberry.type(description="An expected failure of a mutation, with a stable code.")
class UserError:
    code: ErrorCode = strawberry.field(description="What went wrong, as a stable code.")
    message: str = strawberry.field(description="A human-readable explanation.")
    path: list[str] | None = strawberry.field(
        description="The input field the error is about, as a path, if any."
    )

    @classmethod
    def from_domain(cls, error: DomainError) -> UserError:
        return cls(code=ErrorCode(error.code), message=error.message, path=error.path)


class DepotGraphQLError(GraphQLError):
    def __init__(self, error: DomainError) -> None:
        super().__init__(error.message, extensions=error_extensions(error.code, error.path))


def error_extensions(code: str, input_path: list[str] | None) -> dict[str, Any]:
    """A GraphQL error's extensions: its code, and the argument it is about as `inputPath`
    (what a mutation's UserError has as `path`; the error's own `path` is where in the
    response it happened)."""
    if input_path:
        return {"code": code, "inputPath": list(input_path)}
    return {"code": code}


def graphql_error(error: DomainError) -> GraphQLError:
    return DepotGraphQLError(error)


@contextlib.contextmanager
def as_graphql_errors() -> Iterator[None]:
    """For queries and subscriptions: a DomainError becomes a GraphQL error with its code."""
    try:
        yield
    except DomainError as error:
        raise graphql_error(error) from error


def decode_id(global_id: relay.GlobalID | str, type_name: str, *, path: str = "id") -> int:
    """The primary key inside a global id of the expected type; else NOT_FOUND, like a miss."""
    pk = None
    try:
        decoded = (
            global_id
            if isinstance(global_id, relay.GlobalID)
            else relay.GlobalID.from_id(global_id)
        )
        pk = key_of(decoded, type_name)
    except (ValueError, TypeError):
        pass
    if pk is None:
        raise NotFound(f"No such {type_name.lower()}.", path=[path])
    return pk


def key_of(global_id: relay.GlobalID, type_name: str) -> int | None:
    """The primary key inside a global id of the type, or None: only ASCII digits that fit a
    key count (int() also takes "١٢" and " 12 ", and a key past 2**63 made Postgres fail)."""
    node_id = global_id.node_id
    if global_id.type_name != type_name or not (node_id.isascii() and node_id.isdigit()):
        return None
    return int(node_id) if len(node_id) <= 18 else None


def require_authenticated(actor: Any) -> None:
    if not actor.is_authenticated:
        raise Unauthenticated("Sign in, or send an API token as `Authorization: Bearer ...`.")


def _should_mask(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, (GraphQLError, DomainError))


class MaskUnexpectedErrors(MaskErrors):
    """Masks unexpected errors; the log line and the client both get the request id."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_should_mask, error_message="Unexpected error.")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        context = self.execution_context.context
        request_id = getattr(context, "request_id", "-")
        logger.error(
            "unexpected error at %s [request %s]",
            error.path,
            request_id,
            exc_info=error.original_error,
        )
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL_ERROR", "requestId": request_id}
        return masked


class MarkExecution(SchemaExtension):
    """Notes on an HTTP request that its operation began to execute. One that did not (its
    document did not parse or validate, or a limit refused it) is a request error, which
    GraphQL over HTTP answers with 400 and no `data` (schema/http.py). Noted here because
    strawberry tells the two apart only in async execution (a PreExecutionError), and plain
    queries run synchronously (schema/sync_lane.py). Last in the list, so every other
    extension's checks before execution have passed when it runs."""

    def on_execute(self) -> Iterator[None]:
        request = getattr(self.execution_context.context, "request", None)
        if request is not None and hasattr(request, "depot_executed"):
            request.depot_executed = True
        yield
