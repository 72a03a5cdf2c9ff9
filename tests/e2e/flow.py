"""The client side of the upload flow, as an integrator's program would do it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.client import GraphQLClient, TransportWS

START = """mutation($i: AssetUploadStartInput!) {
  assetUploadStart(input: $i) { asset { id } upload { url fields } errors { code message } }
}"""
COMPLETE = """mutation($i: AssetUploadCompleteInput!) {
  assetUploadComplete(input: $i) { job { id state } errors { code message } }
}"""
JOB = """subscription($id: ID!) {
  job(id: $id) { state progress { done total stage } error { code } }
}"""
EVENTS = """subscription($w: ID!, $after: Int) {
  events(workspaceId: $w, after: $after) { sequence type payload }
}"""
ASSET = """query($id: ID!) {
  asset(id: $id) {
    state contentType sha256 metadata failure { code }
    renditions { preset width height size url }
  }
}"""
FINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


@dataclass
class Watched:
    asset_id: str
    job_id: str
    job_updates: list[dict[str, Any]] = field(default_factory=list)
    job_events: list[str] = field(default_factory=list)


def start_upload(
    client: GraphQLClient, collection_id: str, content: bytes, content_type: str
) -> str:
    started = client.data(
        START,
        {
            "i": {
                "collectionId": collection_id,
                "filename": "picture",
                "contentType": content_type,
                "size": len(content),
            }
        },
    )["assetUploadStart"]
    assert started["errors"] == [], started
    posted = client.post_upload(started["upload"], content, "picture")
    assert posted.status_code in (200, 201, 204), posted.text
    return str(started["asset"]["id"])


async def upload_and_watch(
    client: GraphQLClient,
    workspace_id: str,
    collection_id: str,
    content: bytes,
    content_type: str = "image/jpeg",
) -> Watched:
    """Upload, complete, and follow the job live: its durable events and its progress."""
    async with client.websocket() as ws:
        now = await asyncio.to_thread(client.event_sequence, workspace_id)
        events = await ws.subscribe(EVENTS, {"w": workspace_id, "after": now})
        asset_id = await asyncio.to_thread(
            start_upload, client, collection_id, content, content_type
        )
        completed = await asyncio.to_thread(client.data, COMPLETE, {"i": {"assetId": asset_id}})
        result = completed["assetUploadComplete"]
        assert result["errors"] == [], result
        watched = Watched(asset_id=asset_id, job_id=result["job"]["id"])
        job = await ws.subscribe(JOB, {"id": watched.job_id})
        await _follow_job(ws, job, watched)
        await _follow_events(ws, events, watched)
    return watched


async def _follow_job(ws: TransportWS, sub: str, watched: Watched) -> None:
    while True:
        message = await ws.receive(sub, 60)
        if message["type"] == "complete":
            return
        assert message["type"] == "next", message
        watched.job_updates.append(message["payload"]["data"]["job"])


async def _follow_events(ws: TransportWS, sub: str, watched: Watched) -> None:
    while not watched.job_events or watched.job_events[-1] not in {
        f"job.{s.lower()}" for s in FINAL
    }:
        message = await ws.receive(sub, 60)
        assert message["type"] == "next", message
        event = message["payload"]["data"]["events"]
        if event["payload"].get("jobId") == watched.job_id:
            watched.job_events.append(event["type"])


def read_asset(client: GraphQLClient, asset_id: str) -> dict[str, Any]:
    return dict(client.data(ASSET, {"id": asset_id})["asset"])


def download(url: str) -> bytes:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, (url, response.status_code)
    return response.content
