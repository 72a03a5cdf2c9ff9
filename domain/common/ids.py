"""Public ids: the Relay global ids that clients see, also inside event payloads."""

from __future__ import annotations

import base64


def global_id(type_name: str, pk: int) -> str:
    # The same encoding as strawberry.relay (base64 of "Type:pk"), so an id in an event
    # payload can be passed straight back to the API.
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()
