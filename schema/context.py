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


def actor_of(info: Info) -> Actor:
    return info.context.actor
