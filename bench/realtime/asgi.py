"""The bench's ASGI app: Depot's own application, plus the baseline at another path.

HTTP            -> Depot's HTTP app (project.asgi), URLs from bench/realtime/urls.py
HTTP /bench/gc/ -> the cyclic garbage collector's time and collections so far (JSON)
WS /graphql/    -> Depot's websocket stack, exactly as project.asgi builds it
WS /bench/bare/ -> bench.realtime.bare.BareEventsConsumer (?workspace=<pk>)

The GC is timed with a gc.callbacks hook (two perf_counter calls per collection), so the driver
can tell how much of the server's CPU during a burst is the collector walking the heap.
"""

from __future__ import annotations

import gc
import json
import os
import time
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.realtime.settings")

from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path, re_path

from bench.realtime.bare import BareEventsConsumer
from project.asgi import application as depot_application
from project.collector import sockets

_depot = depot_application.application_mapping

_gc: dict[str, Any] = {
    "seconds": 0.0,
    "seconds_by_generation": [0.0, 0.0, 0.0],
    "collections": [0, 0, 0],
    "collected": 0,
    "started": 0.0,
}


def _gc_timer(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc["started"] = time.perf_counter()
    else:
        spent = time.perf_counter() - _gc["started"]
        _gc["seconds"] += spent
        _gc["seconds_by_generation"][info["generation"]] += spent
        _gc["collections"][info["generation"]] += 1
        _gc["collected"] += info["collected"]


gc.callbacks.append(_gc_timer)


async def _http(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"] == "/bench/gc/":
        query = scope.get("query_string", b"")
        if query == b"tune=0":
            # The what-if (README): the collector as CPython sets it, without the tuning that
            # project/asgi.py does at start-up (nothing frozen, gen0 every 700 allocations).
            # SocketHeap is turned off too: it would freeze new sockets and raise the threshold.
            sockets.enabled = False
            gc.unfreeze()
            gc.set_threshold(700, 10, 10)
        body = json.dumps(
            {
                **{k: v for k, v in _gc.items() if k != "started"},
                "threshold": gc.get_threshold(),
                "frozen": gc.get_freeze_count(),
                # Counting them walks the heap: only when asked (outside measured windows).
                "tracked": len(gc.get_objects()) if query in (b"objects=1", b"tune=0") else None,
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await _depot["http"](scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": _http,
        "websocket": URLRouter(
            [
                path("bench/bare/", BareEventsConsumer.as_asgi()),
                # Everything else goes to Depot's websocket stack unchanged (its own router
                # matches graphql/ on the same path).
                re_path(r"^", _depot["websocket"]),
            ]
        ),
    }
)
