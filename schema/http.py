"""GraphQL over HTTP: who is calling, CSRF for cookie sessions, then strawberry's async view."""

from __future__ import annotations

import uuid
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from strawberry.django.views import AsyncGraphQLView

from domain.accounts.actor import ANONYMOUS, Actor
from domain.accounts.errors import InvalidToken
from domain.accounts.selectors import actor_from_bearer
from schema.context import DepotContext

_csrf = CsrfViewMiddleware(lambda request: HttpResponse())


def _no_view(request: HttpRequest) -> HttpResponse:  # pragma: no cover - never called
    return HttpResponse()


def _unauthorised(message: str, code: str) -> JsonResponse:
    response = JsonResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]}, status=401
    )
    response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


async def resolve_actor(request: HttpRequest) -> Actor | HttpResponse:
    """A bearer token wins; else the session, whose requests must pass Django's CSRF check.

    A request with neither is anonymous: it can read nothing and change nothing, so it needs no
    CSRF token either.
    """
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return _unauthorised("Use `Authorization: Bearer <token>`.", "INVALID_TOKEN")
        try:
            return await sync_to_async(actor_from_bearer)(secret=secret.strip())
        except InvalidToken as error:
            return _unauthorised(error.message, error.code)
    user = await request.auser()
    if not user.is_authenticated:
        return ANONYMOUS
    rejected = _csrf.process_view(request, _no_view, (), {})
    if rejected is not None:
        return rejected
    return Actor(user=user)


@method_decorator(csrf_exempt, name="dispatch")
class DepotGraphQLView(AsyncGraphQLView[DepotContext, None]):
    async def dispatch(  # type: ignore[override]
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> Any:
        actor = await resolve_actor(request)
        if isinstance(actor, HttpResponse):
            return actor
        request.depot_actor = actor  # type: ignore[attr-defined]
        request.depot_request_id = uuid.uuid4().hex[:16]  # type: ignore[attr-defined]
        return await super().dispatch(request, *args, **kwargs)

    async def get_context(self, request: HttpRequest, response: HttpResponse) -> DepotContext:
        return DepotContext(
            request=request,
            response=response,
            actor=request.depot_actor,  # type: ignore[attr-defined]
            request_id=request.depot_request_id,  # type: ignore[attr-defined]
        )
