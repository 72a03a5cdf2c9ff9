"""Public ids: the Relay global ids that clients see, also inside event payloads."""

from __future__ import annotations

import base64


def global_id(type_name: str, pk: int) -> str:
    # The same encoding as strawberry.relay (base64 of "Type:pk"), so an id in an event
    # payload can be passed straight back to the API.
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def pk_of(value: object, type_name: str) -> int | None:
    """The primary key inside a global id of `type_name` (as `global_id` makes them, e.g. in an
    event's payload); None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None
    name, _, key = decoded.partition(":")
    if name != type_name or not (key.isascii() and key.isdigit()):
        return None
    return int(key)
