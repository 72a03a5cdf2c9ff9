"""Django's ASGI handler, with one thread hop per request where Django makes a dozen.

Under ASGI, Django's handler sends `request_started` (its receivers are sync: `reset_queries`,
`close_old_connections`) through one thread hop before the view, and closes the response (which
sends `request_finished`) through another after it. A bearer GraphQL request already makes one
hop of its own, the admission (`schema.http`: rate limits, the token, and for a plain query or
a mutation the whole execution), so the two signal hops were two of its three hops, each about
3% of an uncached single-asset request's CPU (bench/http/PROFILE.md, "Eighth session").

For such a request (`schema.http.takes_bearer_lane`) this handler defers both signals to that
hop instead: `request_started` is sent as the admission begins, and when the admission already
produced the final response (refused, cached, or run on the sync lane) the response is closed
there too, before it is sent. Neither signal's receivers touch the response's bytes, and the
request makes no database access outside that hop, so what they do is the same. Any request the
admission does not reach (a 406, a 415, the IDE page) gets both signals in the close hop, in
order.

Every other request (a session's GraphQL request, the admin, the login page, static files)
runs Django's middleware chain in sync mode, as under WSGI, in one hop with both signals: its
`request_started`, the chain and the view, and the close of a final response. Under ASGI,
Django runs a chain of sync-capable middlewares in async mode with a hop for each of their
hooks, and WhiteNoise, which is sync only, switches back to the loop and to a thread again
halfway (about a dozen hops for a plain view; the bench/realtime floor's request spent a
quarter of the server's CPU there, session 10). An async view (the GraphQL view) is then run
on the loop from that hop, as under WSGI. The chain is the one in `settings.MIDDLEWARE`, less
its async-only members (BearerGraphQLLane, which only routes bearer requests, decided before).

Each request's sync code runs in one thread of its own, as with Django's handler, but the thread
is lent from a few kept ones instead of started for the request: Django's `__call__` enters a
`ThreadSensitiveContext()` per request, for which asgiref starts a thread (its executor's worker)
and, on exit, a second one to join the first. asgiref's own `ThreadSensitiveContext(executor=)`
takes a caller-owned executor instead; threads are reused across requests as under WSGI, and
Django's request signals still open and release the database connection around each request.

`__call__` and `handle` are Django 5.2's, changed only where marked;
tests/project/test_asgi_handler.py fails when Django's own ones change, so an upgrade reviews
this copy.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed, RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import FileResponse, HttpRequest
from django.http.response import HttpResponseBase
from django.urls import set_script_prefix
from django.utils.module_loading import import_string

from project.deferred_signals import (
    CLOSED,
    begin_request,
    close_final,
    defer_request_started,
)
from schema.http import takes_bearer_lane


class _RequestThreads:
    """Single-thread executors lent to one request at a time. Used from the event loop only."""

    def __init__(self, keep: int) -> None:
        self._idle: collections.deque[ThreadPoolExecutor] = collections.deque()
        self._keep = keep

    def lend(self) -> ThreadPoolExecutor:
        if self._idle:
            return self._idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="depot-request")

    def take_back(self, executor: ThreadPoolExecutor) -> None:
        # A request cancelled while its sync code ran leaves that code running: whoever
        # borrows the executor next waits for it to end, in the same thread, as the next
        # request on a WSGI worker thread would.
        if len(self._idle) < self._keep:
            self._idle.append(executor)
        else:
            executor.shutdown(wait=False)


# More requests in flight than this start threads of their own again, as Django's handler does.
_request_threads = _RequestThreads(keep=16)


class SyncMiddlewareChain(BaseHandler):
    """`settings.MIDDLEWARE` as Django's WSGI handler loads it (every middleware in sync mode),
    without the async-only ones."""

    def load_middleware(self, is_async: bool = False) -> None:
        # Django's BaseHandler.load_middleware for is_async=False, where every middleware kept
        # can run sync, so no adapting is needed.
        if is_async:
            raise ValueError("this chain is the sync one")
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler = convert_exception_to_response(self._get_response)  # type: ignore[attr-defined]
        for path in reversed(settings.MIDDLEWARE):
            middleware = import_string(path)
            if not getattr(middleware, "sync_capable", True):
                continue  # BearerGraphQLLane: its requests never reach this chain
            try:
                instance = middleware(handler)
            except MiddlewareNotUsed:
                continue
            if instance is None:
                raise ImproperlyConfigured(f"Middleware factory {path} returned None.")
            if hasattr(instance, "process_view"):
                self._view_middleware.insert(0, instance.process_view)
            if hasattr(instance, "process_template_response"):
                self._template_response_middleware.append(instance.process_template_response)
            if hasattr(instance, "process_exception"):
                self._exception_middleware.append(instance.process_exception)
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler


class DepotASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self._sync_chain = SyncMiddlewareChain()
        self._sync_chain.load_middleware()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        # Changed: the request's thread is lent, not started for it (see the module's doc).
        executor = _request_threads.lend()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            _request_threads.take_back(executor)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        # Changed: the request is created first, so that it can send request_started in its
        # first hop (the admission's, or the sync chain's) instead of in a hop of its own.
        request, error_response = self.create_request(scope, body_file)
        if request is not None:
            lane = takes_bearer_lane(request)
            defer_request_started(request, sender=self.__class__, scope=scope, close_early=lane)
        else:
            await signals.request_started.asend(sender=self.__class__, scope=scope)
        if request is None:
            assert error_response is not None
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        async def process_request(request: HttpRequest, send: Any) -> HttpResponseBase:
            # Changed: only a bearer GraphQL request takes the async chain.
            if lane:
                response = await self.run_get_response(request)
            else:
                response = await self.run_sync_chain(request)
            with contextlib.suppress(asyncio.CancelledError):  # the client went away
                await self.send_response(response, send)

            return response

        processing = asyncio.create_task(process_request(request, send))
        tasks = [asyncio.create_task(self.listen_for_disconnect(receive)), processing]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # Changed: the tasks are let go here. The disconnect listener ends with RequestAborted
        # (or a cancel) whose traceback, once result() re-raised it here, holds this frame, and
        # this frame held the task: a cycle that left every request's objects to the cycle
        # collector instead of reference counting.
        tasks.clear()
        del task

        try:
            response = processing.result()
        except asyncio.CancelledError:
            # Changed: a request_started still deferred is sent first.
            await sync_to_async(_finished_without_response)(request, self.__class__)
        else:
            # Changed: no hop for a response closed in the admission hop.
            if not getattr(response, CLOSED, False):
                await sync_to_async(_close)(request, response)

        body_file.close()
        # Changed: AuthenticationMiddleware's `request.user` and `request.auser` refer back to
        # the request (a lambda and a partial over it); gone once the response is sent, the
        # request is freed by reference counting rather than left to the cycle collector.
        request.__dict__.pop("user", None)
        request.__dict__.pop("auser", None)

    async def run_sync_chain(self, request: HttpRequest) -> HttpResponseBase:
        """The request's signal, the sync middleware chain, the view and the close of a final
        response, in one hop (see the module's doc); else as run_get_response."""
        response = await sync_to_async(self._respond_in_one_hop)(request)
        response._handler_class = self.__class__  # type: ignore[attr-defined]
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        return response

    def _respond_in_one_hop(self, request: HttpRequest) -> HttpResponseBase:
        begin_request(request)
        response = self._sync_chain.get_response(request)
        close_final(response)  # after every middleware saw it (sessions save in theirs)
        return response


def _close(request: HttpRequest, response: HttpResponseBase) -> None:
    begin_request(request)
    response.close()


def _finished_without_response(request: HttpRequest, sender: type) -> None:
    begin_request(request)
    signals.request_finished.send(sender=sender)
