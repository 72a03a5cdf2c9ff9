"""Reprocessing: run assets through processing again (new presets, a newer media library).

One parent job in the bulk lane picks the assets and queues a child per asset, also in the bulk
lane, so that uploads (interactive lane) never wait behind a reprocess of a whole workspace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.db.models import Q

from domain.accounts.actor import Actor
from domain.accounts.models import Permission
from domain.accounts.selectors import require_permission
from domain.assets.errors import InvalidAssetInput
from domain.assets.models import Asset, AssetState
from domain.assets.processing import METADATA_VERSION, REPROCESS_ITEM_JOB
from domain.assets.selectors import asset_list_for, collection_get_for
from domain.assets.services import PROCESS_JOB
from domain.common.errors import NotFound
from domain.jobs import registry
from domain.jobs.context import JobContext
from domain.jobs.models import Job, JobState, Lane
from domain.jobs.services import job_create

REPROCESS_JOB = "asset.reprocess"
MAX_ASSET_IDS = 1000
# Assets whose bytes are in storage and that no upload flow is working on.
REPROCESSABLE = (AssetState.READY, AssetState.FAILED)
_BATCH = 100


def reprocess_workspace(
    *,
    actor: Actor,
    asset_ids: Sequence[int] | None = None,
    collection_id: int | None = None,
    workspace_id: int | None = None,
) -> int:
    """The one workspace the filters point at, where the actor may write; else the error."""
    workspaces: set[int] = set()
    if workspace_id is not None:
        require_permission(actor=actor, workspace_id=workspace_id, needed=Permission.READ)
        workspaces.add(workspace_id)
    if collection_id is not None:
        workspaces.add(collection_get_for(actor=actor, collection_id=collection_id).workspace_id)
    if asset_ids is not None:
        wanted = set(asset_ids)
        if len(wanted) > MAX_ASSET_IDS:
            raise InvalidAssetInput(f"At most {MAX_ASSET_IDS} assets per call.", path=["assetIds"])
        found = dict(
            asset_list_for(actor=actor)
            .filter(pk__in=wanted)
            .order_by()
            .values_list("pk", "workspace_id")
        )
        if len(found) != len(wanted):
            raise NotFound("No such asset.", path=["assetIds"])
        workspaces.update(found.values())
    if not workspaces:
        raise InvalidAssetInput("Give assetIds, collectionId or workspaceId.")
    if len(workspaces) > 1:
        raise InvalidAssetInput("The assets to reprocess must be in one workspace.")
    [target] = workspaces
    require_permission(actor=actor, workspace_id=target, needed=Permission.WRITE)
    return target


@transaction.atomic
def assets_reprocess(
    *,
    actor: Actor,
    asset_ids: Sequence[int] | None = None,
    collection_id: int | None = None,
    workspace_id: int | None = None,
    older_than_version: bool = False,
) -> Job:
    """Queue the reprocessing of the assets that match every filter given, in one workspace.

    The assets are picked when the job runs: those READY or FAILED then, and with
    `older_than_version` only those processed by an older version of processing."""
    target = reprocess_workspace(
        actor=actor, asset_ids=asset_ids, collection_id=collection_id, workspace_id=workspace_id
    )
    return job_create(
        workspace_id=target,
        kind=REPROCESS_JOB,
        parameters={
            "asset_ids": None if asset_ids is None else sorted(set(asset_ids)),
            "collection_id": collection_id,
            "older_than_version": older_than_version,
        },
        created_by_id=actor.user.pk if actor.user else None,
    )


def reprocess_candidates(job: Job) -> Any:
    parameters = job.parameters
    assets = Asset.objects.filter(workspace_id=job.workspace_id, state__in=REPROCESSABLE)
    if parameters.get("asset_ids") is not None:
        assets = assets.filter(pk__in=parameters["asset_ids"])
    if parameters.get("collection_id") is not None:
        assets = assets.filter(collection_id=parameters["collection_id"])
    if parameters.get("older_than_version"):
        assets = assets.filter(
            Q(metadata__metadataVersion__lt=METADATA_VERSION)
            | Q(metadata__metadataVersion__isnull=True)
        )
    return assets.order_by("pk")


# It queues one child per asset of a workspace: long for a large one (the children each have
# the default limit).
@registry.register(REPROCESS_JOB, lane=Lane.BULK, time_limit=3600)
def reprocess_assets(ctx: JobContext) -> dict[str, Any]:
    """Queue one child job per asset. A rerun queues no child twice (their idempotency keys
    name this job), and an asset that another processing job is working on is skipped."""
    parent = ctx.job
    ids = list(reprocess_candidates(parent).values_list("pk", flat=True))
    busy = set(
        Job.objects.filter(
            workspace_id=parent.workspace_id,
            kind__in=[PROCESS_JOB, REPROCESS_ITEM_JOB],
            state__in=[JobState.QUEUED, JobState.RUNNING],
        )
        .exclude(parent=parent)
        .values_list("parameters__asset_id", flat=True)
    )
    queued = [asset_id for asset_id in ids if asset_id not in busy]
    for start in range(0, len(queued), _BATCH):
        ctx.progress(start, len(queued), "queueing")
        ctx.check_cancelled()
        # One transaction per batch: fewer commits, and the batch's children go out together.
        with transaction.atomic():
            for asset_id in queued[start : start + _BATCH]:
                job_create(
                    workspace_id=parent.workspace_id,
                    kind=REPROCESS_ITEM_JOB,
                    parameters={"asset_id": asset_id, "force": True},
                    created_by_id=parent.created_by_id,
                    idempotency_key=f"{REPROCESS_JOB}:{parent.pk}:{asset_id}",
                    parent=parent,
                )
    ctx.progress(len(queued), len(queued), "queued")
    return {"queued": len(queued), "skipped": len(ids) - len(queued)}
