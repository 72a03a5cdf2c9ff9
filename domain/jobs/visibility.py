"""Which of a workspace's durable events a member may see.

Every member sees the workspace's events, except token events (`token.created` names the
token, and each says that someone has one): those follow `apiTokens`' rule, so only members
with admin permission and the token's own user see them (`tokens_service.may_see_token`). A
token event recorded before events named the token's user (`userId`) is for admins only.

Hidden events are skipped after the stream has taken them, never left out of the database's
reading: the events subscription takes a hole in the sequences it reads for pruning
(CURSOR_EXPIRED), and a short page of the events query for the end of the stream.
"""

from __future__ import annotations

from typing import Any

from domain.accounts.actor import Actor
from domain.accounts.tokens_service import may_see_token
from domain.common.ids import pk_of

TOKEN_EVENTS = "token."  # noqa: S105 (an event type prefix, not a secret)


def event_visible_to(actor: Actor, *, workspace_id: int, type: str, payload: Any) -> bool:
    """Whether `actor`, a member of `workspace_id`, may see this event of it. In memory: the
    actor's permissions are loaded, so the live path may ask for every event it passes on."""
    if not type.startswith(TOKEN_EVENTS):
        return True
    user_id = pk_of(payload.get("userId"), "User") if isinstance(payload, dict) else None
    return may_see_token(actor, workspace_id=workspace_id, user_id=user_id)
