"""The GraphQL websocket endpoint: graphql-transport-ws only, authenticated in connection_init.

An API token goes in the connection_init payload as {"authToken": "dpt_..."}. Without one, the
session cookie counts. A browser page of another origin cannot ride a user's cookie: strawberry
refuses a cross-origin handshake (HTTP 403) unless DEPOT_WS_ALLOWED_ORIGINS lists the origin.
No ack is sent before authentication; a bad or missing credential closes 4403.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from strawberry.channels import GraphQLWSConsumer
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from domain.accounts.actor import ANONYMOUS, Actor
from domain.accounts.errors import InvalidToken
from domain.accounts.selectors import actor_from_bearer
from schema.context import DepotContext


class DepotWSConsumer(GraphQLWSConsumer):
    def __init__(self, schema: Any) -> None:
        super().__init__(
            schema,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=5),
            max_subscriptions_per_connection=20,
            allowed_origins=settings.DEPOT_WS_ALLOWED_ORIGINS,
        )

    async def get_context(self, request: Any, response: Any) -> DepotContext:  # type: ignore[override]
        return DepotContext(
            request=request,
            response=response,
            actor=ANONYMOUS,
            request_id=uuid.uuid4().hex[:16],
            ws=request,
        )

    async def on_ws_connect(self, context: DepotContext) -> None:  # type: ignore[override]
        params = getattr(context, "connection_params", None) or {}
        secret = params.get("authToken") if isinstance(params, dict) else None
        if secret:
            try:
                actor: Actor = await sync_to_async(actor_from_bearer)(secret=str(secret))
            except InvalidToken:
                raise ConnectionRejectionError() from None
        else:
            user = self.scope.get("user")
            if user is None or not user.is_authenticated:
                raise ConnectionRejectionError()
            actor = Actor(user=user)
        context.actor = actor
