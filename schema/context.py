"""The per-request (or per-websocket) context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strawberry.types import Info as StrawberryInfo

from domain.accounts.actor import Actor


@dataclass
class DepotContext:
    request: Any
    response: Any
    actor: Actor
    request_id: str
    # The websocket consumer, for subscriptions (strawberry's Channels integration).
    ws: Any = None
    # Set by strawberry from the connection_init payload of a websocket.
    connection_params: Any = None


Info = StrawberryInfo[DepotContext, None]


def context_for_request(request: Any, response: Any) -> DepotContext:
    """The context of an HTTP request that admission let in (schema/http.py set its actor)."""
    return DepotContext(
        request=request,
        response=response,
        actor=request.depot_actor,
        request_id=request.depot_request_id,
    )


def actor_of(info: Info) -> Actor:
    return info.context.actor
