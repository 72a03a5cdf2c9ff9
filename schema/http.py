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
import secrets
from dataclasses import dataclass
from typing import Any

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.handlers.exception import response_for_exception
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import (
    NoReverseMatch,
    ResolverMatch,
    get_script_prefix,
    get_urlconf,
    resolve,
    reverse,
)
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from strawberry.django.views import AsyncGraphQLView

from domain.accounts import credentials
from domain.accounts.actor import ANONYMOUS, Actor
from domain.accounts.errors import InvalidToken
from project import ratelimit
from project.deferred_signals import begin_request, close_in_this_hop
from schema import persisted, read_cache
from schema.context import DepotContext, context_for_request
from schema.sync_lane import SyncGraphQLView, sync_lane

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


def admit(
    request: HttpRequest, *, need_sequence: bool = False
) -> tuple[Actor, dict[int, int] | None] | HttpResponseBase:
    """Everything before GraphQL, in one thread hop: rate limits, then who is calling.

    A bearer token wins; else the session, whose requests must pass Django's CSRF check. A
    request with neither is anonymous: it can read nothing and change nothing, so it needs no
    CSRF token either. The actor's permissions are loaded here too, so resolvers that only
    read them need no database access of their own. A token's lookup is reused while the
    credentials epoch, read with the rate limits, stands (domain.accounts.credentials); with
    `need_sequence` it is read with the event sequence of its workspace (for the read cache's
    key), which only the database has.
    """
    # Present at all, even empty, it is the credential: such a request skipped the session
    # middleware (BearerGraphQLLane), so it has no session to fall back on.
    header = request.headers.get("Authorization")
    scheme, _, secret = (header or "").partition(" ")
    secret = secret.strip()
    checks = [("ip", ratelimit.client_ip(request), settings.DEPOT_RATE_LIMIT_IP)]
    if secret:
        checks.append(("token", secret, settings.DEPOT_RATE_LIMIT_TOKEN))
    limited = ratelimit.hit_all(checks, version_key=credentials.EPOCH_KEY if secret else None)
    if not limited.allowed:
        return ratelimit.too_many(limited, "Too many requests.")
    if header is not None:
        if scheme.lower() != "bearer" or not secret:
            return _unauthorised("Use `Authorization: Bearer <token>`.", "INVALID_TOKEN")
        try:
            bearer = credentials.bearer_for(
                secret=secret, epoch=limited.version, need_sequence=need_sequence
            )
        except InvalidToken as error:
            return _unauthorised(error.message, error.code)
        if not need_sequence:
            return bearer.actor, None
        return bearer.actor, {ws: bearer.event_sequence for ws in bearer.actor.permissions}
    user = request.user
    if not user.is_authenticated:
        return ANONYMOUS, None
    rejected = _csrf.process_view(request, _no_view, (), {})
    if rejected is not None:
        return rejected
    actor = Actor(user=user)
    actor.permissions  # noqa: B018 (loads them in this thread)
    return actor, None


@dataclass
class _Admitted:
    """What the admission hop decided: an answer already (refused, cached, or run on the sync
    lane), else the request is the async view's to execute, its actor set on it."""

    answer: HttpResponseBase | None = None
    cache_key: str | None = None


def _admit_and_answer(
    request: HttpRequest, material: read_cache.Material | None, sync_view: SyncGraphQLView | None
) -> _Admitted:
    """admit(); then for a cacheable read its cache key and any cached response; then, for a
    plain query (`sync_view` given), its execution and the read cache's store. One hop, which
    also sends Django's request signals when project.asgi_handler deferred them to it."""
    begin_request(request)
    admitted = admit(request, need_sequence=material is not None)
    if isinstance(admitted, HttpResponseBase):
        close_in_this_hop(request, admitted)
        return _Admitted(answer=admitted)
    actor, sequences = admitted
    key = None
    if material is not None:
        material = material.resolve()
    if material is not None:
        key = read_cache.key_for(material, actor, sequences)
        cached = read_cache.lookup(key)
        if cached is not None:
            if material.register and material.query is not None:
                persisted.store_query(material.digest, material.query)
            close_in_this_hop(request, cached)
            return _Admitted(answer=cached)
    request.depot_actor = actor  # type: ignore[attr-defined]
    request.depot_request_id = secrets.token_hex(8)  # type: ignore[attr-defined]
    request.depot_executed = False  # type: ignore[attr-defined]
    if sync_view is None:
        return _Admitted(cache_key=key)
    response = sync_view.dispatch(request)
    if key is not None and isinstance(response, HttpResponse):
        read_cache.store(key, response)
    close_in_this_hop(request, response)
    return _Admitted(answer=response)


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
        lane = sync_lane(self.schema, self.allow_queries_via_get)
        sync_view = lane.view if lane.takes(request) else None
        admitted = await sync_to_async(_admit_and_answer)(request, material, sync_view)
        if admitted.answer is not None:
            return self._shape(request, admitted.answer, media_type)
        response = await super().dispatch(request, *args, **kwargs)
        if admitted.cache_key is not None and isinstance(response, HttpResponse):
            await sync_to_async(read_cache.store)(admitted.cache_key, response)
        return self._shape(request, response, media_type)

    def _wants_ide(self, request: HttpRequest) -> bool:
        return (
            request.method == "GET"
            and self.graphql_ide is not None
            and "text/html" in request.headers.get("Accept", "")
            and "query" not in request.GET
        )

    def _shape(self, request: HttpRequest, response: HttpResponseBase, media: str) -> Any:
        if response.status_code != 200 or not isinstance(response, HttpResponse):
            return response
        if media == GRAPHQL_RESPONSE:
            response["Content-Type"] = GRAPHQL_RESPONSE
            if getattr(request, "depot_executed", True) is False:
                # A request error (schema.errors.MarkExecution): nothing executed, so the spec
                # wants no `data` at all. A batch answers each of its operations: 200.
                body = json.loads(response.content)
                if isinstance(body, dict) and body.get("errors"):
                    body.pop("data", None)
                    response.content = json.dumps(body).encode()
                    response.status_code = 400
        return response

    async def get_context(self, request: HttpRequest, response: HttpResponse) -> DepotContext:
        return context_for_request(request, response)


# Per URLconf: the GraphQL view's path (without the script prefix) and route.
_routes: dict[str, tuple[str, ResolverMatch] | None] = {}


def _graphql_route(path_info: str) -> ResolverMatch | None:
    """The route of Depot's GraphQL view if `path_info` is its path, else None."""
    urlconf = str(get_urlconf() or settings.ROOT_URLCONF)
    if urlconf not in _routes:
        route = None
        try:
            path = reverse("graphql")
        except NoReverseMatch:
            path = None
        if path is not None:
            # reverse() includes the script prefix; request.path_info does not.
            prefix = get_script_prefix()
            if path.startswith(prefix):
                path = "/" + path[len(prefix) :]
            match = resolve(path)
            view_class = getattr(match.func, "view_class", None)
            if isinstance(view_class, type) and issubclass(view_class, DepotGraphQLView):
                route = (path, match)
        _routes[urlconf] = route
    route = _routes[urlconf]
    if route is None or route[0] != path_info:
        return None
    return route[1]


def _bearer_lane_route(request: HttpRequest) -> ResolverMatch | None:
    if "HTTP_AUTHORIZATION" not in request.META:
        return None
    # A GET without a query may be a browser asking for the IDE page: full chain.
    if request.method == "GET" and "query" not in request.GET:
        return None
    return _graphql_route(request.path_info)


def takes_bearer_lane(request: HttpRequest) -> bool:
    """Whether BearerGraphQLLane sends this request straight to the GraphQL view (which
    project.asgi_handler also needs to know before the request's first thread hop)."""
    return _bearer_lane_route(request) is not None


class BearerGraphQLLane:
    """The first middleware: a request to the GraphQL view with an `Authorization` header
    goes straight to the view, not down the rest of the middleware chain.

    Under ASGI, Django runs each of the chain's sync middlewares (sessions, CSRF, auth,
    WhiteNoise...) through a thread hop per hook: about a dozen hops per request, more than the
    work of a cached read (bench/http/PROFILE.md). A bearer request needs none of them: the
    token wins over any session (so no session, user or CSRF check is read), and the path is
    no static file. What the chain adds to every response is kept: the hooks of
    SecurityMiddleware, CommonMiddleware and XFrameOptionsMiddleware run here, inline, as
    they do no I/O. Every other request takes the full chain.

    Async only, on purpose: were it sync-capable, Django would run it in the same thread hop
    as the sync SecurityMiddleware below it, which is the cost it avoids.
    """

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)
        self._security = SecurityMiddleware(get_response)
        self._common = CommonMiddleware(get_response)
        self._xframe = XFrameOptionsMiddleware(get_response)

    async def __call__(self, request: HttpRequest) -> Any:
        match = _bearer_lane_route(request)
        if match is None:
            return await self.get_response(request)
        request.resolver_match = match
        response: Any
        try:
            response = self._security.process_request(request) or self._common.process_request(
                request
            )
            if response is None:
                response = await match.func(request, *match.args, **match.kwargs)
            if callable(getattr(response, "render", None)):  # a TemplateResponse
                response = await sync_to_async(response.render)()
        except Exception as error:  # as the chain's exception handling would answer
            response = await sync_to_async(response_for_exception, thread_sensitive=False)(
                request, error
            )
        # In the chain's order: the innermost middleware's hook first.
        response = self._xframe.process_response(request, response)
        response = self._common.process_response(request, response)
        return self._security.process_response(request, response)
