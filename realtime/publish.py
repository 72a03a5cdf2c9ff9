"""Publishing to the channel layer: a leaf module that domain services may call.

Delivery here is at-most-once (channels-redis drops on a full channel or after its expiry); the
durable path is the Event table, which subscribers read to fill any gap. So a failure to
publish is logged and swallowed: it must never fail the change that was already committed.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from realtime import groups

logger = logging.getLogger(__name__)


def event_message(
    *,
    workspace_id: int,
    sequence: int,
    type: str,
    payload: dict[str, Any],
    created_at: str,
    job_id: int | None = None,
) -> dict[str, Any]:
    return {
        "type": groups.EVENT_MESSAGE,
        "workspace_id": workspace_id,
        "sequence": sequence,
        "event_type": type,
        "payload": payload,
        "created_at": created_at,
        "job_id": job_id,
    }


def _send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:
        logger.warning("publish to %s failed; subscribers will catch up", group, exc_info=True)


def publish_events(messages: list[dict[str, Any]]) -> None:
    for message in messages:
        publish_event(message)


def publish_event(message: dict[str, Any]) -> None:
    _send(groups.workspace_events(message["workspace_id"]), message)
    job_id = message.get("job_id")
    if job_id is not None:
        _nudge_job(job_id, message["workspace_id"])


def credentials_changed_after_commit(user_id: int) -> None:
    """Ask the user's open sockets to check their token and memberships again, now."""
    message = {"type": groups.CREDENTIALS_MESSAGE}
    transaction.on_commit(lambda: _send(groups.user_credentials(user_id), message))


def publish_job_progress(job_id: int, workspace_id: int) -> None:
    """A live-only nudge: subscribers of the job read its current progress."""
    _nudge_job(job_id, workspace_id)


def _nudge_job(job_id: int, workspace_id: int) -> None:
    message = {"type": groups.JOB_MESSAGE, "job_id": job_id, "workspace_id": workspace_id}
    _send(groups.job_updates(job_id), message)
    _send(groups.workspace_jobs(workspace_id), message)
