"""A GraphQL request over HTTP leaves nothing for the cycle collector: reference counting frees
its objects (the request, its execution context, its rows) as soon as it is answered.

Two cycles used to keep every request's objects alive until a young collection found them
(~90-250 objects a request; in a traced jobs phase of bench/realtime, young collections of up
to 11 ms that each freed ~15,000 objects): the ASGI handler's frame held the disconnect listener
task, whose exception's traceback held that frame (project/asgi_handler.py), and graphql-core's
execution context holds its own bound methods, as do the plans' closures
(schema/execution.DepotExecutionContext._let_go); and on Django's middleware chain,
AuthenticationMiddleware's `request.user` and `request.auser` close over the request (the handler
drops them once the response is sent).

A request that meets a database error still leaves some: Django's DatabaseErrorWrapper
re-raises the error from a frame that holds it, so a second `collectionCreate` of one name
(answered NAME_TAKEN) still leaves its request and execution context to the collector.
"""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest

from domain.accounts.models import Workspace
from domain.common.ids import global_id
from project.asgi_handler import DepotASGIHandler
from schema.context import DepotContext
from schema.execution import DepotExecutionContext
from tests import factories
from tests.realtime.sockets import close_db

pytestmark = pytest.mark.django_db(transaction=True)

DASHBOARD = """query($w: ID!) { collections(workspaceId: $w, first: 5) { totalCount edges {
  node { id name assets(first: 3) { totalCount edges { node { id title renditions { preset } } } }
    recent: assets(first: 1, ordering: [{title: DESC}]) { edges { node { title } } } } } } }"""
CREATE = """mutation($i: CollectionCreateInput!) {
  collectionCreate(input: $i) { collection { id } errors { code } } }"""
RETRY = "mutation($id: ID!) { jobRetry(id: $id) { job { id } errors { code } } }"
# What a request's own objects are; anything else the collector finds meanwhile (a background
# thread's, the test harness's) is not this test's business.
REQUEST_OBJECTS = (ASGIRequest, DepotExecutionContext, DepotContext, asyncio.Task)


async def _request(handler: DepotASGIHandler, token: str, payload: dict[str, Any] | None) -> int:
    """One GraphQL request (a GET of /healthz/, through the session middleware chain, for
    None), with uvicorn's receive: after the response, a disconnect."""
    body = json.dumps(payload).encode() if payload is not None else b""
    path = "/graphql/" if payload is not None else "/healthz/"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST" if payload is not None else "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"accept", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    answered = asyncio.Event()
    read = False
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if not read:
            read = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])
        elif not message.get("more_body"):
            answered.set()

    await handler(scope, receive, send)
    return statuses[0]


def test_graphql_requests_leave_no_cyclic_garbage(token: str, workspace: Workspace) -> None:
    for c in range(2):
        collection = factories.collection(workspace, name=f"c{c}")
        factories.rendition(factories.asset(collection))
    w = global_id("Workspace", workspace.pk)
    requests: list[dict[str, Any] | None] = [
        {"query": DASHBOARD, "variables": {"w": w}},
        {"query": CREATE, "variables": {"i": {"workspaceId": w, "name": "New"}}},
        {"query": RETRY, "variables": {"id": global_id("Job", 999_999)}},  # NOT_FOUND
        {"query": "{ nope }"},
        None,  # Django's middleware chain: AuthenticationMiddleware's request.user
    ]
    handler = DepotASGIHandler()

    async def serve_all() -> list[int]:
        return [await _request(handler, token, payload) for payload in requests]

    try:
        assert asyncio.run(serve_all()) == [200] * 5  # warm: plans, caches, imports
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            statuses = asyncio.run(serve_all())
            gc.collect()
        finally:
            gc.set_debug(0)
        garbage = list(gc.garbage)
        gc.garbage.clear()
    finally:
        asyncio.run(sync_to_async(close_db)())
    assert statuses == [200] * 5
    left = [type(o).__name__ for o in garbage if isinstance(o, REQUEST_OBJECTS)]
    assert left == []
