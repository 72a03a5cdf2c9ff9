"""Django's ASGI handler, less two thread hops for a bearer-token GraphQL request.

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
order. Every other request is handled exactly as by Django's handler.

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
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import set_script_prefix

from project.deferred_signals import CLOSED, begin_request, defer_request_started
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


class DepotASGIHandler(ASGIHandler):
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
        # Changed: the request is created first, so that a bearer GraphQL request can send
        # request_started in its admission hop instead of in a hop of its own.
        request, error_response = self.create_request(scope, body_file)
        if request is not None and takes_bearer_lane(request):
            defer_request_started(request, sender=self.__class__, scope=scope)
        else:
            await signals.request_started.asend(sender=self.__class__, scope=scope)
        if request is None:
            assert error_response is not None
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        async def process_request(request: HttpRequest, send: Any) -> HttpResponseBase:
            response = await self.run_get_response(request)
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


def _close(request: HttpRequest, response: HttpResponseBase) -> None:
    begin_request(request)
    response.close()


def _finished_without_response(request: HttpRequest, sender: type) -> None:
    begin_request(request)
    signals.request_finished.send(sender=sender)
