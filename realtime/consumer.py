"""The GraphQL websocket endpoint: graphql-transport-ws only, authenticated in connection_init.

An API token goes in the connection_init payload as {"authToken": "dpt_..."}. Without one, the
session cookie counts. A browser page of another origin cannot ride a user's cookie: strawberry
refuses a cross-origin handshake (HTTP 403) unless DEPOT_WS_ALLOWED_ORIGINS lists the origin.
No ack is sent before authentication; a bad or missing credential closes 4403. A user over
DEPOT_WS_MAX_SOCKETS_PER_USER gets 1013 (Try Again Later) with the reason TOO_MANY_SOCKETS.

While open, the socket's credentials are checked again every DEPOT_WS_RECHECK_SECONDS, and at
once when a service says the user's tokens or memberships changed: a revoked token, a removed
membership or a deactivated user closes it with 4403; other changes update its permissions.
The sockets of one user and credential in a process share those checks (realtime/checks.py), and
each socket's timer starts at a random point of its first interval, so sockets opened together
do not all check together.

However the socket ends (the client leaves, the channel layer fails because Redis went away, a
handler raises), `_release` runs once it has: the re-check stops, the user's group is left and
the socket stops counting under the user's limit. Before, only a disconnect from the client
did that, so after a Redis restart the re-checks of sockets already gone kept renewing them in
the user's set, and the user's reconnects were refused as over the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from datetime import timedelta
from typing import Any

import redis.exceptions
from asgiref.sync import sync_to_async
from django.conf import settings
from graphql import GraphQLError
from strawberry.channels import GraphQLWSConsumer
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from domain.accounts.actor import ANONYMOUS, Actor
from domain.accounts.errors import InvalidToken
from domain.accounts.selectors import actor_from_bearer, actor_still_valid
from project import collector, ratelimit
from realtime import groups, sockets
from realtime.checks import SharedChecks
from realtime.frames import DepotTransportWSHandler, SocketRefused
from schema.context import DepotContext

logger = logging.getLogger(__name__)

_checks = SharedChecks()

# RFC 6455's "Try Again Later": graphql-ws clients retry it (with their backoff), unlike 4403.
TRY_AGAIN_LATER = 1013


class DepotWSConsumer(GraphQLWSConsumer):
    graphql_transport_ws_handler_class = DepotTransportWSHandler

    def __init__(self, schema: Any) -> None:
        super().__init__(
            schema,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=settings.DEPOT_WS_INIT_TIMEOUT_SECONDS),
            max_subscriptions_per_connection=settings.DEPOT_WS_MAX_SUBSCRIPTIONS,
            allowed_origins=settings.DEPOT_WS_ALLOWED_ORIGINS,
        )
        self.bounded_listeners: dict[str, set[Any]] = {}
        self.depot_context: DepotContext | None = None
        self.secret: str | None = None
        self.session_key: str | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.counted_user: int | None = None
        # This socket in its user's set of open sockets (realtime.sockets).
        self.socket_id = uuid.uuid4().hex

    async def get_context(self, request: Any, response: Any) -> DepotContext:  # type: ignore[override]
        self.depot_context = DepotContext(
            request=request,
            response=response,
            actor=ANONYMOUS,
            request_id=uuid.uuid4().hex[:16],
            ws=request,
        )
        return self.depot_context

    async def on_ws_connect(self, context: DepotContext) -> None:  # type: ignore[override]
        params = getattr(context, "connection_params", None) or {}
        secret = params.get("authToken") if isinstance(params, dict) else None
        user = None
        if not secret:
            user = self.scope.get("user")
            if user is None or not user.is_authenticated:
                raise ConnectionRejectionError()
            # Re-checks ask whether this session still stands (a logout ends the socket).
            session = self.scope.get("session")
            self.session_key = getattr(session, "session_key", None)
        # One hop to Django's sync world for all of it: the connect burst of 1,000 sockets
        # queues on that one thread.
        actor, counted = await sync_to_async(_open_socket)(
            secret and str(secret), user, self.socket_id
        )
        if not counted:
            # Over the per-user limit: refuse this socket, not the others, with 1013 (try
            # again later): a socket of the user's that closes frees a place.
            raise SocketRefused(
                TRY_AGAIN_LATER,
                f"TOO_MANY_SOCKETS: at most {settings.DEPOT_WS_MAX_SOCKETS_PER_USER} per user",
            )
        assert actor.user is not None
        self.secret = str(secret) if secret else None
        self.counted_user = actor.user.pk
        context.actor = actor
        assert self.channel_layer is not None
        await self.channel_layer.group_add(
            groups.user_credentials(actor.user.pk), self.channel_name
        )
        self.watcher = asyncio.create_task(self._watch_credentials())
        collector.sockets.opened()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except (redis.exceptions.RedisError, OSError) as error:
            # The channel layer's reader failed (Redis went away): every socket of the process
            # ends here at once, so one line each, no traceback. The client reconnects and
            # resumes from its cursor.
            logger.warning("a websocket ended because the channel layer failed: %r", error)
            await self._close_quietly(1011)
        except Exception:
            logger.exception("a websocket ended on an error")
            await self._close_quietly(1011)
        finally:
            await self._release()

    async def disconnect(self, code: int) -> None:
        try:
            # strawberry's: ends the protocol handler and every operation. An authentication
            # still running finishes first, so what it set up is there for _release.
            await super().disconnect(code)
        finally:
            await self._release()

    async def operation_refused(self) -> GraphQLError | None:
        """Count an operation sent on the socket against the caller's rate limits, as an HTTP
        request counts: without it a socket could send queries and mutations past them. None
        if it may run."""
        checks = [("ip", self._client_ip(), settings.DEPOT_RATE_LIMIT_IP)]
        if self.secret:
            checks.append(("token", self.secret, settings.DEPOT_RATE_LIMIT_TOKEN))
        verdict = await sync_to_async(ratelimit.hit_all, thread_sensitive=False)(checks)
        if verdict.allowed:
            return None
        return GraphQLError(
            f"Too many requests: try again in {verdict.retry_after} s.",
            extensions={"code": "RATE_LIMITED", "retryAfter": verdict.retry_after},
        )

    def _client_ip(self) -> str:
        client = self.scope.get("client")
        return str(client[0]) if client else "unknown"

    async def _release(self) -> None:
        """Undo what the socket set up; safe to call again, and after any failure."""
        run_task = self.run_task
        if run_task is not None and not run_task.done():
            # Ended without the client's disconnect (the layer failed): strawberry's handler
            # still waits for frames. Tell it the socket is gone, as its disconnect does.
            self.message_queue.put_nowait({"message": None, "disconnected": True})
            await asyncio.wait({run_task}, timeout=10)
            if not run_task.done():
                run_task.cancel()
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        user_id, self.counted_user = self.counted_user, None
        if user_id is None:
            return
        collector.sockets.closed()
        try:
            if self.channel_layer is not None:
                await self.channel_layer.group_discard(
                    groups.user_credentials(user_id), self.channel_name
                )
            await sync_to_async(sockets.closed_for)(user_id, self.socket_id)
        except Exception as error:
            # Redis is gone: the group membership and the socket's place in the user's set
            # expire by themselves (the layer's group expiry; the set's, no longer renewed).
            logger.warning("could not forget a closed websocket: %r", error)

    async def _close_quietly(self, code: int) -> None:
        with contextlib.suppress(Exception):
            await self.close(code=code)

    async def dispatch(self, message: Any) -> None:
        kind = message.get("type", "")
        if kind == groups.EVENTS_MESSAGE:
            for event in message["events"]:
                await self.dispatch(event)
            return
        if kind == groups.CREDENTIALS_MESSAGE:
            # Every socket of the user got this message: they share one check, started now.
            try:
                await self._recheck(nudge=message.get("id") or uuid.uuid4().hex)
            except Exception:
                # The user's credentials changed and could not be read again: the socket may
                # no longer be allowed what it does. Close it (not 4403: the credentials may
                # be fine); the client reconnects and is checked again.
                logger.exception("could not re-check a websocket's credentials after a change")
                await self._close_quietly(1011)
            return
        listeners = self.bounded_listeners.get(kind)
        if listeners:
            for listener in list(listeners):
                listener.deliver(message)
            return
        await super().dispatch(message)

    async def _watch_credentials(self) -> None:
        interval = settings.DEPOT_WS_RECHECK_SECONDS
        # A random start, so the sockets of a reconnect storm spread over the interval.
        await asyncio.sleep(interval * random.uniform(0.5, 1.0))
        while True:
            try:
                await self._recheck()
                if self.counted_user is not None:
                    await sync_to_async(sockets.still_open)(self.counted_user, self.socket_id)
            except Exception:
                # The database or Redis failed this once: check again next interval, rather
                # than never again for the life of the socket.
                logger.exception("could not re-check a websocket's credentials")
            await asyncio.sleep(interval * random.uniform(0.9, 1.1))

    async def _recheck(self, nudge: str | None = None) -> None:
        context = self.depot_context
        if context is None or context.actor.user is None:
            return
        actor, secret, session = context.actor, self.secret, self.session_key
        user_id = context.actor.user.pk
        if nudge is None:
            # A result at most half an interval old will do (one check per user and interval).
            key: tuple[Any, ...] = ("valid", user_id, secret, session)
            since = time.monotonic() - settings.DEPOT_WS_RECHECK_SECONDS / 2
        else:
            key, since = ("valid", user_id, secret, session, nudge), 0.0

        def check() -> Any:
            return sync_to_async(actor_still_valid)(actor=actor, secret=secret, session_key=session)

        fresh = await _checks.run(key, since, check)
        if fresh is None or not set(context.actor.permissions) <= set(fresh.permissions):
            logger.info("closing a websocket whose credentials were withdrawn")
            await self.close(code=4403, reason="Forbidden")
            return
        context.actor = fresh


def _open_socket(secret: str | None, user: Any, socket_id: str) -> tuple[Actor, bool]:
    """The socket's actor (permissions loaded) and whether it was counted under the user's
    limit. Raises ConnectionRejectionError for a bad token."""
    if secret:
        try:
            actor = actor_from_bearer(secret=secret)
        except InvalidToken:
            raise ConnectionRejectionError() from None
    else:
        actor = Actor(user=user)
    assert actor.user is not None
    if not sockets.open_for(actor.user.pk, socket_id):
        return actor, False
    actor.permissions  # noqa: B018 (loads them now, in the sync world)
    return actor, True
