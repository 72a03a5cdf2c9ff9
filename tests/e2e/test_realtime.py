"""The live layer: protocol close codes, limits, revocation, independence, fan-out across web
processes, and resuming after Redis restarts."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
from django.db import connection as db_connection
from django.db import transaction
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from domain.accounts.models import Role, User
from domain.accounts.services import membership_add
from domain.common.ids import global_id
from domain.jobs import events
from realtime import publish
from tests.e2e.conftest import Tenant
from tests.e2e.flow import EVENTS
from tests.support.client import GraphQLClient
from tests.support.processes import ManagedProcess, free_port, wait_for_tcp

pytestmark = [pytest.mark.e2e, pytest.mark.services]
PROTOCOL = [Subprotocol("graphql-transport-ws")]
CREATE = """mutation($w: ID!, $n: String!) {
  collectionCreate(input: {workspaceId: $w, name: $n}) { errors { code } } }"""


async def _closed_with(ws: Any, wait: float = 10) -> int | None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), wait)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


def test_protocol_close_codes_and_ping(tenant: Tenant, start_web: Callable[..., str]) -> None:
    url = GraphQLClient(start_web(DEPOT_WS_INIT_TIMEOUT_SECONDS="0.5")).ws_url()
    init = json.dumps({"type": "connection_init", "payload": {"authToken": tenant.token}})
    subscribe = json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "{ __typename }"}})

    async def scenario() -> dict[str, Any]:
        codes: dict[str, Any] = {}
        async with websockets.connect(url, subprotocols=PROTOCOL) as ws:
            codes["no init"] = await _closed_with(ws)
        async with websockets.connect(url, subprotocols=PROTOCOL) as ws:
            await ws.send(subscribe)
            codes["subscribe before ack"] = await _closed_with(ws)
        async with websockets.connect(url, subprotocols=PROTOCOL) as ws:
            await ws.send(init)
            await ws.recv()
            await ws.send(init)
            codes["second init"] = await _closed_with(ws)
        async with websockets.connect(url, subprotocols=PROTOCOL) as ws:
            await ws.send(init)
            await ws.recv()
            await ws.send(json.dumps({"type": "ping"}))
            codes["ping"] = json.loads(await ws.recv())["type"]
            await ws.send('{"type": "no-such-message"}')
            codes["invalid message"] = await _closed_with(ws)
        async with websockets.connect(url, subprotocols=PROTOCOL) as ws:
            await ws.send(init)
            await ws.recv()
            events = json.dumps(
                {
                    "id": "a",
                    "type": "subscribe",
                    "payload": {
                        "query": EVENTS,
                        "variables": {"w": global_id("Workspace", tenant.workspace.pk)},
                    },
                }
            )
            await ws.send(events)
            await ws.send(events)
            codes["duplicate id"] = await _closed_with(ws)
        return codes

    assert asyncio.run(scenario()) == {
        "no init": 4408,
        "subscribe before ack": 4401,
        "second init": 4429,
        "ping": "pong",
        "invalid message": 4400,
        "duplicate id": 4409,
    }


def test_subscriptions_on_one_socket_are_independent_and_limited(
    tenant: Tenant, start_web: Callable[..., str]
) -> None:
    client = GraphQLClient(start_web(DEPOT_WS_MAX_SUBSCRIPTIONS="3"), tenant.token)
    workspace = global_id("Workspace", tenant.workspace.pk)

    async def scenario() -> tuple[list[str], dict[str, Any], list[str]]:
        async with client.websocket() as ws:
            now = await asyncio.to_thread(client.event_sequence, workspace)
            live = {"w": workspace, "after": now}
            subs = [await ws.subscribe(EVENTS, live) for _ in range(3)]
            over = await ws.subscribe(EVENTS, live)
            refused = await ws.receive(over)
            await ws.complete(subs[0])
            await asyncio.to_thread(client.data, CREATE, {"w": workspace, "n": "after-complete"})
            seen = []
            for sub in subs[1:]:
                message = await ws.receive(sub)
                seen.append(message["payload"]["data"]["events"]["type"])
            # The first one is gone: nothing more arrives for it.
            with pytest.raises(asyncio.TimeoutError):
                await ws.receive(subs[0], 1)
            return [refused["type"]], refused["payload"][0], seen

    kinds, error, seen = asyncio.run(scenario())
    assert kinds == ["error"]
    assert "limit" in error["message"].lower()
    assert seen == ["collection.created", "collection.created"]


def test_a_revoked_token_or_removed_member_loses_the_socket_at_once(
    tenant: Tenant, start_web: Callable[..., str], make_user_e2e: Callable[..., User]
) -> None:
    base = start_web(DEPOT_WS_RECHECK_SECONDS="60")
    owner = GraphQLClient(base, tenant.token)
    workspace = global_id("Workspace", tenant.workspace.pk)
    member = make_user_e2e("member")
    membership_add(workspace=tenant.workspace, user=member, role=Role.EDITOR)
    from domain.accounts.models import TokenScope
    from domain.accounts.services import api_token_create

    _, member_token = api_token_create(
        workspace=tenant.workspace, user=member, name="m", scopes=[TokenScope.READ]
    )
    _, second = api_token_create(
        workspace=tenant.workspace, user=tenant.user, name="s", scopes=[TokenScope.ADMIN]
    )
    admin = GraphQLClient(base, second)

    async def watch(token: str, action: Callable[[], Any]) -> int | None:
        async with GraphQLClient(base, token).websocket() as ws:
            # The ack comes after the socket joined its user's group: a nudge cannot be missed.
            await asyncio.to_thread(action)
            return await ws.closed(10)

    tokens = admin.data(
        """query($w: ID!) { workspace(id: $w) { apiTokens(first: 10) {
      edges { node { id name } } } } }""",
        {"w": workspace},
    )["workspace"]["apiTokens"]["edges"]
    first_id = next(e["node"]["id"] for e in tokens if e["node"]["name"] == "e2e")

    def revoke() -> None:
        admin.data(
            """mutation($id: ID!) { apiTokenRevoke(id: $id) { errors { code } } }""",
            {"id": first_id},
        )

    def remove() -> None:
        admin.data(
            """mutation($w: ID!, $u: ID!) { memberRemove(workspaceId: $w, userId: $u) {
          errors { code } } }""",
            {"w": workspace, "u": global_id("User", member.pk)},
        )

    assert asyncio.run(watch(tenant.token, revoke)) == 4403
    assert asyncio.run(watch(member_token, remove)) == 4403
    assert owner.execute("{ viewer { username } }").status_code == 401


def test_a_client_on_one_web_process_sees_a_job_started_through_another(
    tenant: Tenant, start_web: Callable[..., str], start_worker: Callable[..., ManagedProcess]
) -> None:
    from tests import media
    from tests.e2e.flow import COMPLETE, start_upload

    start_worker()
    process_a = GraphQLClient(start_web(), tenant.token)
    process_b = GraphQLClient(start_web(), tenant.token)
    workspace = global_id("Workspace", tenant.workspace.pk)

    async def scenario() -> list[str]:
        seen: list[str] = []
        async with process_a.websocket() as ws:
            now = await asyncio.to_thread(process_a.event_sequence, workspace)
            sub = await ws.subscribe(
                """subscription($w: ID!, $after: Int) {
                  events(workspaceId: $w, after: $after, types: ["job."]) { type } }""",
                {"w": workspace, "after": now},
            )
            asset = await asyncio.to_thread(
                start_upload,
                process_b,
                global_id("Collection", tenant.collection.pk),
                media.png(),
                "image/png",
            )
            await asyncio.to_thread(process_b.data, COMPLETE, {"i": {"assetId": asset}})
            while not seen or seen[-1] != "job.succeeded":
                message = await ws.receive(sub, 30)
                seen.append(message["payload"]["data"]["events"]["type"])
        return seen

    assert asyncio.run(scenario()) == ["job.queued", "job.started", "job.succeeded"]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_after_redis_restarts_clients_resume_and_lose_nothing(
    tenant: Tenant, start_web: Callable[..., str], tmp_path: Path
) -> None:
    port = free_port()
    argv = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]
    redis = ManagedProcess(argv, log_dir=tmp_path, name="redis").start()
    wait_for_tcp("127.0.0.1", port, 10, process=redis)
    client = GraphQLClient(start_web(REDIS_URL=f"redis://127.0.0.1:{port}/0"), tenant.token)
    workspace = global_id("Workspace", tenant.workspace.pk)

    def produce(prefix: str, count: int) -> None:
        for n in range(count):
            assert (
                client.data(CREATE, {"w": workspace, "n": f"{prefix}{n}"})["collectionCreate"][
                    "errors"
                ]
                == []
            )

    async def resume(cursor: int) -> list[int]:
        # What a client does: reconnect with its cursor, retrying a few times while the
        # server's connections to Redis recover.
        for attempt in range(5):
            try:
                async with client.websocket() as ws:
                    sub = await ws.subscribe(EVENTS, {"w": workspace, "after": cursor})
                    got = []
                    for _ in range(7):
                        message = await ws.receive(sub)
                        got.append(message["payload"]["data"]["events"]["sequence"])
                    return got
            except (TimeoutError, websockets.ConnectionClosed):
                await asyncio.sleep(0.5 * (attempt + 1))
        raise AssertionError("could not resume after Redis restarted")

    async def scenario() -> list[int]:
        sequences: list[int] = []
        async with client.websocket() as ws:
            now = await asyncio.to_thread(client.event_sequence, workspace)
            sub = await ws.subscribe(EVENTS, {"w": workspace, "after": now})
            await asyncio.to_thread(produce, "a", 3)
            for _ in range(3):
                message = await ws.receive(sub)
                sequences.append(message["payload"]["data"]["events"]["sequence"])
            redis.stop()
            # Writes keep committing while Redis is down; only the live push is lost.
            await asyncio.to_thread(produce, "b", 5)
        restarted = ManagedProcess(argv, log_dir=tmp_path, name="redis").start()
        try:
            wait_for_tcp("127.0.0.1", port, 10, process=restarted)
            await asyncio.to_thread(produce, "c", 2)
            sequences.extend(await resume(sequences[-1]))
        finally:
            restarted.stop()
        return sequences

    sequences = asyncio.run(scenario())
    assert sequences == list(range(sequences[0], sequences[0] + 10))


def test_jobs_job_stats_and_asset_changes_stream_live(
    tenant: Tenant, start_web: Callable[..., str], start_worker: Callable[..., ManagedProcess]
) -> None:
    from tests import media
    from tests.e2e.flow import COMPLETE, start_upload

    start_worker()
    client = GraphQLClient(start_web(), tenant.token)
    workspace = global_id("Workspace", tenant.workspace.pk)
    collection = global_id("Collection", tenant.collection.pk)

    async def scenario() -> tuple[list[str], list[Any], list[str]]:
        async with client.websocket() as ws:
            jobs = await ws.subscribe(
                """subscription($w: ID!) { jobs(workspaceId: $w, filters: {kind: "asset.process"})
                { state } }""",
                {"w": workspace},
            )
            changes = await ws.subscribe(
                """subscription($c: ID!) {
                  assetChanged(collectionId: $c) { type asset { state } } }""",
                {"c": collection},
            )
            # Last, and waited for: a socket joins its subscriptions' groups one at a time,
            # in the order they were sent, so once jobStats has answered, the two above are
            # live too, and nothing of the upload below can pass them by.
            stats = await ws.subscribe(
                """subscription($w: ID!) {
                  jobStats(workspaceId: $w) { counts { state count } } }""",
                {"w": workspace},
            )
            first_stats = (await ws.receive(stats))["payload"]["data"]["jobStats"]["counts"]
            asset = await asyncio.to_thread(
                start_upload, client, collection, media.png(), "image/png"
            )
            await asyncio.to_thread(client.data, COMPLETE, {"i": {"assetId": asset}})
            states: list[str] = []
            while not states or states[-1] != "SUCCEEDED":
                states.append((await ws.receive(jobs))["payload"]["data"]["jobs"]["state"])
            kinds: list[str] = []
            while not kinds or kinds[-1] != "asset.ready":
                kinds.append((await ws.receive(changes))["payload"]["data"]["assetChanged"]["type"])
            later_stats: list[Any] = []
            while {"state": "SUCCEEDED", "count": 1} not in (
                later_stats[-1] if later_stats else []
            ):
                later_stats.append(
                    (await ws.receive(stats))["payload"]["data"]["jobStats"]["counts"]
                )
            return states, [first_stats, later_stats[-1]], kinds

    states, stats, kinds = asyncio.run(scenario())
    assert states[0] in {"QUEUED", "RUNNING"}
    assert states[-1] == "SUCCEEDED"
    assert stats[0] == []
    assert {"state": "SUCCEEDED", "count": 1} in stats[1]
    assert kinds == ["asset.created", "asset.uploaded", "asset.processing", "asset.ready"]


def test_an_idle_socket_still_gets_live_events(
    tenant: Tenant, start_web: Callable[..., str]
) -> None:
    """channels-redis waits for messages in 5 s blocking reads; a Redis client whose socket
    timeout is not longer than that kills the idle socket's receive loop."""
    client = GraphQLClient(start_web(), tenant.token)
    workspace = global_id("Workspace", tenant.workspace.pk)

    async def scenario() -> str:
        async with client.websocket() as ws:
            now = await asyncio.to_thread(client.event_sequence, workspace)
            sub = await ws.subscribe(EVENTS, {"w": workspace, "after": now})
            await asyncio.sleep(6.5)  # idle through more than one blocking read
            await asyncio.to_thread(client.data, CREATE, {"w": workspace, "n": "after-idle"})
            message = await ws.receive(sub, 10)
            return str(message["payload"]["data"]["events"]["type"])

    assert asyncio.run(scenario()) == "collection.created"


# With the payload: each frame carries its event's 20 kB.
STREAM = """subscription($w: ID!, $after: Int) {
  events(workspaceId: $w, after: $after) { sequence payload } }"""
STATS = """subscription($w: ID!) { jobStats(workspaceId: $w) { counts { state } } }"""


def test_a_client_that_stops_reading_is_told_it_fell_behind_and_others_go_on(
    tenant: Tenant, start_web: Callable[..., str]
) -> None:
    """A client that stops reading its socket (TCP backpressure, not a slow handler): the
    server's buffers stay bounded (its subscription's backlog is dropped, not the process's
    memory grown), the other clients of the process get every event meanwhile, and the slow
    one, once it reads again, gets what was sent, then SUBSCRIBER_TOO_SLOW with the cursor that
    resumes it without a loss or a duplicate."""
    count, batch, size = 1000, 10, 20_000  # 20 MB: far more than the buffers on the way
    client = GraphQLClient(start_web(DEPOT_WS_BACKLOG="50"), tenant.token)
    workspace = global_id("Workspace", tenant.workspace.pk)

    def produce() -> None:
        """One commit of `batch` events, published."""
        try:
            with transaction.atomic():
                for n in range(batch):
                    # Random: the socket's compression (permessage-deflate) would shrink a
                    # repeated character to nothing.
                    pad = secrets.token_hex(size // 2)
                    events.record(tenant.workspace.pk, "test.bulk", {"n": n, "pad": pad})
            publish.flush()
        finally:
            db_connection.close()

    async def stalled_socket() -> Any:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # no autotuning
        host, port = client.base_url.split("//")[1].rstrip("/").split(":")
        sock.connect((host, int(port)))
        # max_queue: websockets stops reading the socket once 4 frames wait unread.
        return await connect(client.ws_url(), subprotocols=PROTOCOL, sock=sock, max_queue=4)

    async def subscribe(ws: Any, sub_id: str, query: str, variables: dict[str, Any]) -> None:
        payload = {"query": query, "variables": variables}
        await ws.send(json.dumps({"id": sub_id, "type": "subscribe", "payload": payload}))

    async def next_frame(ws: Any) -> dict[str, Any]:
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if message["type"] != "ping":
                return dict(message)
            await ws.send(json.dumps({"type": "pong"}))

    async def scenario() -> tuple[int, list[int], dict[str, Any], list[int], list[int]]:
        start = await asyncio.to_thread(client.event_sequence, workspace)
        async with client.websocket() as reader:
            slow = await stalled_socket()
            try:
                await slow.send(
                    json.dumps({"type": "connection_init", "payload": {"authToken": tenant.token}})
                )
                assert (await next_frame(slow))["type"] == "connection_ack"
                # Both live: a socket joins its subscriptions' groups in order.
                await subscribe(slow, "events", STREAM, {"w": workspace, "after": start})
                await subscribe(slow, "stats", STATS, {"w": workspace})
                assert (await next_frame(slow))["id"] == "stats"
                sub = await reader.subscribe(STREAM, {"w": workspace, "after": start})
                # From here `slow` reads nothing while the events are committed. The reader
                # takes each commit's events before the next: it never falls behind.
                read: list[int] = []
                for _ in range(count // batch):
                    await asyncio.to_thread(produce)
                    for _ in range(batch):
                        message = await reader.receive(sub)
                        read.append(message["payload"]["data"]["events"]["sequence"])
                received: list[int] = []
                while True:  # `slow` reads again
                    message = await next_frame(slow)
                    assert message["id"] == "events", message
                    if message["payload"].get("errors"):
                        error = message["payload"]["errors"][0]
                        break
                    received.append(message["payload"]["data"]["events"]["sequence"])
                assert (await next_frame(slow)) == {"id": "events", "type": "complete"}
                resume = error["extensions"]["resumeAfter"]
                await subscribe(slow, "again", STREAM, {"w": workspace, "after": resume})
                resumed: list[int] = []
                while len(received) + len(resumed) < count:
                    message = await next_frame(slow)
                    if message["id"] == "again":
                        resumed.append(message["payload"]["data"]["events"]["sequence"])
                return start, read, error, received, resumed
            finally:
                await slow.close()

    start, read, error, received, resumed = asyncio.run(scenario())
    everything = list(range(start + 1, start + count + 1))
    assert read == everything  # the reading client missed nothing while the other stalled
    assert error["extensions"]["code"] == "SUBSCRIBER_TOO_SLOW"
    assert len(received) < count - 50, "the client never fell behind: buffers held it all"
    assert error["extensions"]["resumeAfter"] == received[-1]
    assert received + resumed == everything
