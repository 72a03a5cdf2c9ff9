"""events(): the shared-render path sends exactly the frames strawberry's general path sends.

In process: Depot's websocket consumer under asgiref's ApplicationCommunicator, the suite's
channels-redis layer, events recorded by domain.jobs.events (published by realtime.publish).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from domain.accounts.models import Workspace
from domain.common.ids import global_id
from domain.jobs import events
from realtime import publish
from schema import subscriptions as subs
from tests.realtime.sockets import Socket, run

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

PLAIN = """subscription($w: ID!, $a: Int, $t: [String!]) {
  e: events(workspaceId: $w, after: $a, types: $t) {
    __typename seq: sequence type topic payload createdAt
  }
}"""
# The same result, but a fragment keeps it off the shared path.
FRAGMENT = """subscription($w: ID!, $a: Int, $t: [String!]) {
  e: events(workspaceId: $w, after: $a, types: $t) {
    ... on Event { __typename seq: sequence type topic payload createdAt }
  }
}"""
PAYLOADS = [
    {"b": 1, "a": [1, 2, {"z": None}], "ü": "naïve ☃"},
    {"jobId": "Sm9iOjE=", "state": "QUEUED", "n": 1.5},
    {},
]


@pytest.fixture
def general_path() -> Iterator[None]:
    subs.SHARED_RENDER = False
    yield
    subs.SHARED_RENDER = True


def _record(workspace: Workspace, kinds: list[str]) -> list[int]:
    sequences = []
    for n, kind in enumerate(kinds):
        with transaction.atomic():
            sequences.append(
                events.record(workspace.pk, kind, PAYLOADS[n % len(PAYLOADS)]).sequence
            )
    publish.flush()
    return sequences


record = sync_to_async(_record)


def _same_frames(general: list[str], shared: list[str], general_id: str, shared_id: str) -> None:
    assert [f.replace(f'"id":"{general_id}"', f'"id":"{shared_id}"', 1) for f in general] == shared


def test_shared_frames_are_byte_identical_to_the_general_paths(
    workspace: Workspace, token: str
) -> None:
    w = global_id("Workspace", workspace.pk)
    misses_before = subs._SHARED.misses

    async def scenario() -> tuple[dict[str, list[str]], list[int]]:
        start = (await record(workspace, ["asset.created"]))[0]
        replayed = await record(workspace, ["asset.created", "job.queued", "job.succeeded"])
        socket = Socket()
        await socket.open(token)
        try:
            variables = {"w": w, "a": start}
            subs.SHARED_RENDER = False
            await socket.subscribe("general", PLAIN, variables)
            await socket.collect("general", 3)  # it runs: the flag was read
            subs.SHARED_RENDER = True
            await socket.subscribe("shared", PLAIN, variables)
            await socket.subscribe("fragment", FRAGMENT, variables)
            filtered = {**variables, "t": ["job."]}
            await socket.subscribe("filtered", PLAIN, filtered)
            for sub_id in ("shared", "fragment"):
                await socket.collect(sub_id, 3)
            await socket.collect("filtered", 2)
            live = await record(workspace, ["asset.updated", "job.started", "job.failed"])
            return {
                "general": await socket.collect("general", 6),
                "shared": await socket.collect("shared", 6),
                "fragment": await socket.collect("fragment", 6),
                "filtered": await socket.collect("filtered", 4),
            }, replayed + live
        finally:
            subs.SHARED_RENDER = True
            await socket.close()

    frames, sequences = run(scenario)
    _same_frames(frames["general"], frames["shared"], "general", "shared")
    _same_frames(frames["general"], frames["fragment"], "general", "fragment")
    data = [json.loads(f)["payload"]["data"]["e"] for f in frames["shared"]]
    assert [d["seq"] for d in data] == sequences
    assert {d["__typename"] for d in data} == {"Event"}
    assert data[0]["payload"] == PAYLOADS[0]
    assert [json.loads(f)["payload"]["data"]["e"]["type"] for f in frames["filtered"]] == [
        "job.queued",
        "job.succeeded",
        "job.started",
        "job.failed",
    ]
    # shared and filtered rendered each event once: 3 replayed + 3 live (the filter does not
    # change the payload, so they share it; the general path and the fragment render nothing).
    assert subs._SHARED.misses - misses_before == 6


def test_subscribers_share_one_render_per_event_and_a_general_path_stays_general(
    workspace: Workspace, token: str, general_path: None
) -> None:
    w = global_id("Workspace", workspace.pk)

    async def scenario() -> tuple[list[list[str]], int, int]:
        start = (await record(workspace, ["asset.created"]))[0]
        sockets = [Socket() for _ in range(4)]
        for socket in sockets:
            await socket.open(token)
        try:
            # Sockets 0-2 subscribe on the shared path, 3 on the general one; a subscription
            # has read the flag (and joined its group) once it has its replayed event.
            subs.SHARED_RENDER = True
            for n, socket in enumerate(sockets[:3]):
                await socket.subscribe(str(n), PLAIN, {"w": w, "a": start - 1})
                await socket.collect(str(n), 1)
            subs.SHARED_RENDER = False
            await sockets[3].subscribe("3", PLAIN, {"w": w, "a": start - 1})
            await sockets[3].collect("3", 1)
            misses, hits = subs._SHARED.misses, subs._SHARED.hits
            await record(workspace, ["job.queued", "job.succeeded"])
            received = [await s.collect(str(n), 3) for n, s in enumerate(sockets)]
            return received, subs._SHARED.misses - misses, subs._SHARED.hits - hits
        finally:
            for socket in sockets:
                await socket.close()

    received, misses, hits = run(scenario)
    assert misses == 2  # one render per live event for the three shared subscribers
    assert hits == 4
    for n in range(3):
        _same_frames(received[3], received[n], "3", str(n))
