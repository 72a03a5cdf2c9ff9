"""The floor of the mutation-to-client loop: the anchors' Celery loop, on Depot's own processes.

`../shared/bench-anchors` measures a loop that writes nothing anywhere: an HTTP request whose
handler calls `run_job.delay()`, a Celery task that does no work and then
`async_to_sync(channel_layer.group_send)`, and a subscriber that receives the message (9.5 ms
p50 there). The goal for Depot's no-op job (10 ms p50, 20 ms p99) is that loop's figure, taken on
another day's machine. This module rebuilds that loop here, so both run in one bench run, through
the same uvicorn process, the same Celery worker and broker, the same Redis, and the same client:

  POST /bench/floor/ {"workspace": pk, "token": t}   a plain Django view, no auth, no database
    -> floor_task.delay(pk, t)                        Celery's default queue (Depot's interactive)
    -> the worker: async_to_sync(group_send)          to realtime.groups.workspace_events(pk)
    -> BareEventsConsumer                             {"sequence": 0, "payload": {"floor": t}}

Depot's loop does more on the same path: admission (rate limit, token), write permission, the
job row and job.queued in one statement, two durable transitions in the worker, three events
each to three groups. The ratio of the two loops is what this bench reports.
"""

from __future__ import annotations

import json

from asgiref.sync import async_to_sync
from celery import shared_task
from channels.layers import get_channel_layer
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from realtime import groups

FLOOR_TASK = "bench.floor"


@shared_task(name=FLOOR_TASK, ignore_result=True)
def floor_task(workspace_pk: int, token: str) -> None:
    message = {"type": "depot.event", "sequence": 0, "payload": {"floor": token}}
    async_to_sync(get_channel_layer().group_send)(groups.workspace_events(workspace_pk), message)


@csrf_exempt
@require_POST
def floor_start(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body)
    floor_task.delay(int(body["workspace"]), str(body["token"]))
    return JsonResponse({"token": body["token"]})
