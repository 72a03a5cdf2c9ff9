"""GraphQL over HTTP: who is calling, rate limits, CSRF for cookie sessions, and the media
types and status codes of the GraphQL-over-HTTP spec, around strawberry's async view.

- `Accept: application/graphql-response+json`: that media type back; a request error (parse,
  validation, limits: nothing executed) is HTTP 400 and its body has no `data`.
- `Accept: application/json`, `*/*` or none (legacy clients): application/json and 200 for any
  well-formed request.
- Anything else (no acceptable type) is 406; a POST body other than JSON is 415.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from strawberry.django.views import AsyncGraphQLView
from strawberry.types.execution import PreExecutionError

from domain.accounts.actor import ANONYMOUS, Actor
from domain.accounts.errors import InvalidToken
from domain.accounts.selectors import actor_from_bearer
from project import ratelimit
from schema import read_cache
from schema.context import DepotContext

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"

_csrf = CsrfViewMiddleware(lambda request: HttpResponse())


def _no_view(request: HttpRequest) -> HttpResponse:  # pragma: no cover - never called
    return HttpResponse()


def _unauthorised(message: str, code: str) -> JsonResponse:
    response = JsonResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]}, status=401
    )
    response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


def _request_error(status: int, message: str, code: str) -> JsonResponse:
    return JsonResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]}, status=status
    )


def negotiate(accept: str) -> str | None:
    """The response media type for an Accept header, or None if none is acceptable."""
    if not accept.strip():
        return JSON
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, media.lower()))
    for _, _, media in sorted(ranked):
        if media == GRAPHQL_RESPONSE:
            return GRAPHQL_RESPONSE
        if media in (JSON, "application/*", "*/*"):
            return JSON
    return None


def _is_mutation(query: str) -> bool:
    try:
        document = parse(query)
    except GraphQLError:
        return False  # a parse error is reported by the normal path
    return any(
        isinstance(d, OperationDefinitionNode) and d.operation == OperationType.MUTATION
        for d in document.definitions
    )


def admit(request: HttpRequest) -> Actor | HttpResponseBase:
    """Everything before GraphQL, in one thread hop: rate limits, then who is calling.

    A bearer token wins; else the session, whose requests must pass Django's CSRF check. A
    request with neither is anonymous: it can read nothing and change nothing, so it needs no
    CSRF token either. The actor's permissions are loaded here too, so resolvers that only
    read them need no database access of their own.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    checks = [("ip", ratelimit.client_ip(request), settings.DEPOT_RATE_LIMIT_IP)]
    if secret:
        checks.append(("token", secret, settings.DEPOT_RATE_LIMIT_TOKEN))
    limited = ratelimit.hit_all(checks)
    if not limited.allowed:
        return ratelimit.too_many(limited, "Too many requests.")
    if header:
        if scheme.lower() != "bearer" or not secret:
            return _unauthorised("Use `Authorization: Bearer <token>`.", "INVALID_TOKEN")
        try:
            return actor_from_bearer(secret=secret)
        except InvalidToken as error:
            return _unauthorised(error.message, error.code)
    user = request.user
    if not user.is_authenticated:
        return ANONYMOUS
    rejected = _csrf.process_view(request, _no_view, (), {})
    if rejected is not None:
        return rejected
    actor = Actor(user=user)
    actor.permissions  # noqa: B018 (loads them in this thread)
    return actor


def _admit_and_look_up(
    request: HttpRequest, material: dict[str, Any] | None
) -> tuple[Actor | HttpResponseBase, str | None, HttpResponse | None]:
    """admit(), and for a cacheable read its cache key and any cached response: one hop."""
    actor = admit(request)
    if isinstance(actor, HttpResponseBase) or material is None:
        return actor, None, None
    key = read_cache.key_for(material, actor)
    return actor, key, read_cache.lookup(key)


@method_decorator(csrf_exempt, name="dispatch")
class DepotGraphQLView(AsyncGraphQLView[DepotContext, None]):
    async def dispatch(  # type: ignore[override]
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> Any:
        if self._wants_ide(request):
            return await super().dispatch(request, *args, **kwargs)
        media_type = negotiate(request.headers.get("Accept", ""))
        if media_type is None:
            return _request_error(406, f"Accept {GRAPHQL_RESPONSE} or {JSON}.", "NOT_ACCEPTABLE")
        if request.method == "POST" and not (request.content_type or "").startswith(JSON):
            return _request_error(
                415, "Send the request as application/json.", "UNSUPPORTED_MEDIA_TYPE"
            )
        if request.method == "GET" and _is_mutation(request.GET.get("query", "")):
            refused = _request_error(405, "Send mutations with POST.", "METHOD_NOT_ALLOWED")
            refused["Allow"] = "POST"
            return refused
        material = read_cache.request_material(request)
        actor, cache_key, cached = await sync_to_async(_admit_and_look_up)(request, material)
        if isinstance(actor, HttpResponseBase):
            return actor
        if cached is not None:
            return self._shape(request, cached, media_type)
        request.depot_actor = actor  # type: ignore[attr-defined]
        request.depot_request_id = uuid.uuid4().hex[:16]  # type: ignore[attr-defined]
        request.depot_request_error = False  # type: ignore[attr-defined]
        response = await super().dispatch(request, *args, **kwargs)
        if cache_key is not None and isinstance(response, HttpResponse):
            await sync_to_async(read_cache.store)(cache_key, response)
        return self._shape(request, response, media_type)

    def _wants_ide(self, request: HttpRequest) -> bool:
        return (
            request.method == "GET"
            and self.graphql_ide is not None
            and "text/html" in request.headers.get("Accept", "")
            and "query" not in request.GET
        )

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        result = await super().execute_operation(*args, **kwargs)
        request = kwargs.get("request", args[0] if args else None)
        if isinstance(result, PreExecutionError) and request is not None:
            request.depot_request_error = True
        return result

    def _shape(self, request: HttpRequest, response: HttpResponseBase, media: str) -> Any:
        if response.status_code != 200 or not isinstance(response, HttpResponse):
            return response
        if media == GRAPHQL_RESPONSE:
            response["Content-Type"] = GRAPHQL_RESPONSE
            if getattr(request, "depot_request_error", False):
                # A request error: nothing executed, so the spec wants no `data` at all.
                body = json.loads(response.content)
                if isinstance(body, dict):
                    body.pop("data", None)
                    response.content = json.dumps(body).encode()
                response.status_code = 400
        return response

    async def get_context(self, request: HttpRequest, response: HttpResponse) -> DepotContext:
        return DepotContext(
            request=request,
            response=response,
            actor=request.depot_actor,  # type: ignore[attr-defined]
            request_id=request.depot_request_id,  # type: ignore[attr-defined]
        )
