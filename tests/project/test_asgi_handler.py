"""Depot's ASGI handler: Django's request signals in a bearer GraphQL request's admission hop.

Every request still gets `request_started` once, before anything it does with the database,
and `request_finished` once, at the end; a bearer GraphQL request answered in its admission hop
makes that one hop only.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import threading
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from asgiref import sync
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core import signals
from django.core.handlers.asgi import ASGIHandler

from domain.accounts.models import Workspace
from domain.common.ids import global_id
from project.asgi_handler import DepotASGIHandler
from schema import http
from tests.realtime.sockets import close_db

pytestmark = pytest.mark.django_db(transaction=True)

# Django 5.2's ASGIHandler.__call__ and handle, which project/asgi_handler.py copies with a few
# changes.
DJANGO_HANDLE_SHA256 = "05b877cf417b0e5ea2767f2e5ad374d35b8fa26898f1970119629b2445e83b41"


def test_the_copied_methods_are_djangos_current_ones() -> None:
    source = inspect.getsource(ASGIHandler.__call__) + inspect.getsource(ASGIHandler.handle)
    assert hashlib.sha256(source.encode()).hexdigest() == DJANGO_HANDLE_SHA256, (
        "Django's ASGIHandler.__call__ or handle changed: bring the changes into "
        "project/asgi_handler.py, then record the new hash here."
    )


class Record:
    def __init__(self) -> None:
        self.steps: list[str] = []
        self.hops: list[str] = []


@pytest.fixture
def record() -> Iterator[Record]:
    seen = Record()

    def started(**kwargs: Any) -> None:
        seen.steps.append("started")

    def finished(**kwargs: Any) -> None:
        seen.steps.append("finished")

    real_admit = http.admit

    def admit(*args: Any, **kwargs: Any) -> Any:
        seen.steps.append("admit")
        return real_admit(*args, **kwargs)

    real_call = sync.SyncToAsync.__call__

    async def counted(self: sync.SyncToAsync, *args: Any, **kwargs: Any) -> Any:
        name = getattr(self.func, "__qualname__", repr(self.func))
        if name != "log_response":  # Django logs a 4xx or 5xx in a thread: not ours to save
            seen.hops.append(name)
        return await real_call(self, *args, **kwargs)

    signals.request_started.connect(started, dispatch_uid="test-started")
    signals.request_finished.connect(finished, dispatch_uid="test-finished")
    try:
        with (
            mock.patch.object(http, "admit", admit),
            mock.patch.object(sync.SyncToAsync, "__call__", counted),
        ):
            yield seen
    finally:
        signals.request_started.disconnect(dispatch_uid="test-started")
        signals.request_finished.disconnect(dispatch_uid="test-finished")


def _serve(
    path: str, body: dict[str, Any] | None, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """One request through the handler; then the connections its sync thread opened close."""
    try:
        return asyncio.run(_call(path, body, headers))
    finally:
        asyncio.run(sync_to_async(close_db)())


async def _call(
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
    handler: DepotASGIHandler | None = None,
) -> tuple[int, dict[str, Any]]:
    method = "POST" if body is not None else "GET"
    raw = json.dumps(body).encode() if body else b""
    status, _, content = await _exchange(method, path, raw, headers, handler)
    return status, json.loads(content) if content.startswith(b"{") else {}


async def _exchange(
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    handler: DepotASGIHandler | None = None,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One request of any kind through the handler: status, headers, content."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    app = ApplicationCommunicator(handler or DepotASGIHandler(), scope)
    await app.send_input({"type": "http.request", "body": body})
    start = await app.receive_output(10)
    content = b""
    while True:
        part = await app.receive_output(10)
        content += part.get("body", b"")
        if not part.get("more_body"):
            break
    await app.wait(10)
    return start["status"], start["headers"], content


def _bearer(token: str, accept: str = "application/json") -> dict[str, str]:
    return {
        "authorization": f"Bearer {token}",
        "content-type": "application/json",
        "accept": accept,
        "host": "testserver",
    }


def test_a_plain_query_is_one_hop_with_both_signals_in_it(
    record: Record, token: str, workspace: Workspace
) -> None:
    query = "query($id: ID!) { workspace(id: $id) { name } }"
    status, body = _serve(
        "/graphql/",
        {"query": query, "variables": {"id": global_id("Workspace", workspace.pk)}},
        _bearer(token),
    )
    assert (status, body) == (200, {"data": {"workspace": {"name": "Acme"}}})
    assert record.steps == ["started", "admit", "finished"]
    assert record.hops[:-1] == ["_admit_and_answer"]  # then close_db, the test's own


def test_a_mutation_is_one_hop_with_both_signals_in_it(
    record: Record, token: str, workspace: Workspace
) -> None:
    mutation = """mutation($i: CollectionCreateInput!) {
      collectionCreate(input: $i) { collection { name } errors { code } } }"""
    variables = {"i": {"workspaceId": global_id("Workspace", workspace.pk), "name": "Shots"}}
    status, body = _serve("/graphql/", {"query": mutation, "variables": variables}, _bearer(token))
    assert status == 200
    assert body["data"]["collectionCreate"] == {"collection": {"name": "Shots"}, "errors": []}
    assert record.steps == ["started", "admit", "finished"]
    # the sync lane runs mutations too: signals, admission and the mutation in one hop
    assert record.hops[:-1] == ["_admit_and_answer"]


def test_a_request_refused_before_admission_still_gets_both_signals(
    record: Record, token: str
) -> None:
    status, body = _serve(
        "/graphql/", {"query": "{ viewer { username } }"}, _bearer(token, "text/html")
    )
    assert status == 406
    assert body["errors"][0]["extensions"]["code"] == "NOT_ACCEPTABLE"
    assert record.steps == ["started", "finished"]
    assert record.hops[:-1] == ["_close"]  # both signals, in order, in the close hop


def test_a_wrong_token_is_refused_in_the_admission_hop(record: Record) -> None:
    status, body = _serve("/graphql/", {"query": "{ viewer { username } }"}, _bearer("nope"))
    assert status == 401
    assert body["errors"][0]["extensions"]["code"] == "INVALID_TOKEN"
    assert record.steps == ["started", "admit", "finished"]
    assert record.hops[:-1] == ["_admit_and_answer"]


def test_a_sessions_graphql_request_runs_the_chain_in_one_hop_then_its_admission(
    record: Record,
) -> None:
    status, body = _serve(
        "/graphql/",
        {"query": "{ viewer { username } }"},
        {"content-type": "application/json", "accept": "application/json", "host": "testserver"},
    )
    assert (status, body) == (200, {"data": {"viewer": None}})
    assert record.steps == ["started", "admit", "finished"]
    # The sync middleware chain with request_started, then the async view's admission from
    # it: Django's handler made about a dozen (a hop per middleware hook, and two for the
    # signals).
    assert record.hops[:-1] == ["DepotASGIHandler._respond_in_one_hop", "_admit_and_answer"]


def _raw(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """_exchange, then the connections its sync thread opened close."""
    try:
        return asyncio.run(_exchange(method, path, body, headers or {}))
    finally:
        asyncio.run(sync_to_async(close_db)())


def _cookies(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    found = {}
    for name, value in headers:
        if name.lower() == b"set-cookie":
            key, _, rest = value.decode().partition("=")
            found[key] = rest.split(";")[0]
    return found


def test_a_login_runs_the_whole_chain_in_one_hop_and_saves_its_session_before_finishing(
    record: Record, owner: Any
) -> None:
    """A plain sync view (the login page) through the sync middleware chain: one hop per
    request, in which the middlewares' hooks still run (CSRF cookie and check, the session
    saved) and the session is saved before request_finished releases the connection."""
    real_save = SessionStore.save

    def save(store: SessionStore, *args: Any, **kwargs: Any) -> None:
        record.steps.append("session saved")
        real_save(store, *args, **kwargs)

    status, headers, _ = _raw("GET", "/login/", headers={"host": "testserver"})
    assert status == 200
    csrf = _cookies(headers)["csrftoken"]
    assert (b"X-Frame-Options", b"DENY") in headers  # XFrameOptionsMiddleware's hook ran
    assert record.steps == ["started", "finished"]
    assert record.hops[:-1] == ["DepotASGIHandler._respond_in_one_hop"]
    record.steps.clear()
    record.hops.clear()

    form = f"username={owner.username}&password=pw-for-tests&csrfmiddlewaretoken={csrf}"
    with mock.patch.object(SessionStore, "save", save):
        status, headers, _ = _raw(
            "POST",
            "/login/",
            form.encode(),
            {
                "host": "testserver",
                "content-type": "application/x-www-form-urlencoded",
                "cookie": f"csrftoken={csrf}",
            },
        )
    assert status == 302, "the login failed"
    session_key = _cookies(headers)["sessionid"]
    # login() saves the new session once and SessionMiddleware's hook again; both before the
    # connection is released.
    assert record.steps == ["started", "session saved", "session saved", "finished"]
    assert record.hops[:-1] == ["DepotASGIHandler._respond_in_one_hop"]
    assert Session.objects.filter(session_key=session_key).exists()

    # Without the CSRF cookie the chain's CSRF check refuses, as under Django's handler.
    status, _, _ = _raw(
        "POST",
        "/login/",
        form.encode(),
        {"host": "testserver", "content-type": "application/x-www-form-urlencoded"},
    )
    assert status == 403


def test_the_sync_chain_is_settings_middleware_less_the_bearer_lane() -> None:
    from django.conf import settings

    chain = DepotASGIHandler()._sync_chain._middleware_chain
    found = []
    while chain is not None:
        instance = getattr(chain, "__wrapped__", chain)
        if not hasattr(instance, "get_response"):
            break
        found.append(f"{type(instance).__module__}.{type(instance).__qualname__}")
        chain = instance.get_response
    assert found == [
        path for path in settings.MIDDLEWARE if path != "schema.http.BearerGraphQLLane"
    ]


def test_requests_reuse_threads_but_never_share_one_at_a_time(
    token: str, workspace: Workspace
) -> None:
    """Each request's sync code runs in one thread of its own, as under Django's handler; the
    threads are kept for later requests instead of started and joined for each."""
    threads: list[tuple[str, int]] = []

    def started(**kwargs: Any) -> None:
        threads.append(("started", threading.get_ident()))

    def finished(**kwargs: Any) -> None:
        threads.append(("finished", threading.get_ident()))

    query = {"query": "{ viewer { username } }"}
    handler = DepotASGIHandler()

    async def main() -> None:
        for _ in range(3):  # one after the other
            await _call(path="/graphql/", body=query, headers=_bearer(token), handler=handler)
        # three at once: three threads, none of them shared while its request runs
        await asyncio.gather(
            *(
                _call(path="/graphql/", body=query, headers=_bearer(token), handler=handler)
                for _ in range(3)
            )
        )
        await sync_to_async(close_db)()

    signals.request_started.connect(started, dispatch_uid="test-threads-started")
    signals.request_finished.connect(finished, dispatch_uid="test-threads-finished")
    try:
        before = threading.active_count()
        asyncio.run(main())
    finally:
        signals.request_started.disconnect(dispatch_uid="test-threads-started")
        signals.request_finished.disconnect(dispatch_uid="test-threads-finished")
    sequential, concurrent = threads[:6], threads[6:]
    assert len({ident for _, ident in sequential}) == 1  # the same thread, lent three times
    assert [step for step, _ in sequential] == ["started", "finished"] * 3
    open_requests: dict[int, int] = {}
    for step, ident in concurrent:
        open_requests[ident] = open_requests.get(ident, 0) + (1 if step == "started" else -1)
        assert open_requests[ident] in (0, 1)  # a thread serves one request at a time
    assert len({ident for _, ident in concurrent}) == 3
    assert threading.active_count() <= before + 3  # kept, not started anew for each request
