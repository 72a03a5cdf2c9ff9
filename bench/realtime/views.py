"""Bench-only HTTP endpoint: start a bench.noop job the way a mutation starts one.

POST /bench/noop/ with `Authorization: Bearer <token>`: the caller is admitted by Depot's own
GraphQL admission (schema.http.admit: rate limits, then the token, kept in process while the
credentials epoch stands), write permission is checked by require_permission, and the job is
queued by domain.jobs.services.job_create (which records job.queued and dispatches after
commit), i.e. what a mutation does, without GraphQL's parse/validate/execute around it.
"""

from __future__ import annotations

import json
import os

from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from bench.realtime.noop import NOOP_JOB
from domain.accounts.models import Permission
from domain.accounts.selectors import require_permission
from domain.common.errors import DomainError
from domain.common.ids import global_id
from domain.jobs.services import job_create
from schema.http import admit

_trace = os.environ.get("BENCH_TRACE") == "1"


@csrf_exempt
@require_POST
def noop_start(request: HttpRequest) -> HttpResponseBase:
    if _trace:
        from django.db import connection

        from bench.realtime.trace import current, mark, sql_timer

        current["job"] = "view"
        mark("view.start", "view")
        with connection.execute_wrapper(sql_timer):
            return _noop_start(request)
    return _noop_start(request)


def _mark(name: str) -> None:
    """A step inside the view, traced (BENCH_TRACE=1) as the view's until its job is known."""
    if _trace:
        from bench.realtime.trace import mark

        mark(name, "view")


def _noop_start(request: HttpRequest) -> HttpResponseBase:
    admitted = admit(request)
    _mark("admit.end")
    if isinstance(admitted, HttpResponseBase):
        return admitted  # 401 or 429, as GraphQL answers
    actor, _ = admitted
    try:
        workspace_id = int(json.loads(request.body or b"{}")["workspace"])
        require_permission(actor=actor, workspace_id=workspace_id, needed=Permission.WRITE)
        _mark("perm.end")
    except (DomainError, KeyError, ValueError) as error:
        return JsonResponse({"error": str(error)}, status=403)
    assert actor.user is not None
    job = job_create(
        workspace_id=workspace_id, kind=NOOP_JOB, parameters={}, created_by_id=actor.user.pk
    )
    if _trace:
        from bench.realtime.trace import mark

        mark("view.end", job.pk)
    return JsonResponse({"jobId": global_id("Job", job.pk), "pk": job.pk})
