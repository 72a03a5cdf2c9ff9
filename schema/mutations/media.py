"""Mutations about media processing: a workspace's media settings, reprocessing, and
renditions made on demand."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry import relay

from domain.accounts.models import Permission, Workspace
from domain.accounts.selectors import workspace_for
from domain.assets import policy, renditions_on_demand, reprocess, selectors
from domain.jobs.models import Job
from schema.context import Info, actor_of
from schema.errors import UserError, decode_id
from schema.mutations import Once, attempt, attempt_once, either_mode, request_of
from schema.scalars import BigInt
from schema.types.accounts import WorkspaceType
from schema.types.assets import RenditionType
from schema.types.jobs import JobType
from schema.types.media import MediaKindEnum, MediaSettingsType, RenditionFormatEnum

IDEMPOTENCY_HELP = "Repeat-safe: the same key with the same input returns the first result."


@strawberry.input(description="A rendition to make of every asset with a picture.")
class RenditionPresetInput:
    name: str = strawberry.field(
        description="Unique in the workspace: lower-case letters, digits, - and _ (at most 48)."
    )
    max_side: int = strawberry.field(
        description="Fit inside this many pixels square, 16 to 8192 (never enlarged)."
    )
    format: RenditionFormatEnum = strawberry.field(description="The image format.")
    quality: int = strawberry.field(default=85, description="Encoder quality, 1 to 100.")


@strawberry.input(
    description="Changes to a workspace's media settings: an omitted field stays as it is, "
    "null puts it back to its default."
)
class WorkspaceMediaSettingsUpdateInput:
    workspace_id: relay.GlobalID = strawberry.field(description="The workspace.")
    max_upload_bytes: BigInt | None = strawberry.field(
        default=strawberry.UNSET,
        description="The largest upload in bytes, at most the deployment's limit (the default).",
    )
    allowed_kinds: list[MediaKindEnum] | None = strawberry.field(
        default=strawberry.UNSET, description="The kinds accepted, at least one (default: all)."
    )
    allow_gps: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="Keep GPS positions of photos and videos in metadata (default: false).",
    )
    presets: list[RenditionPresetInput] | None = strawberry.field(
        default=strawberry.UNSET,
        description="The renditions to make, at most 8; an empty list makes none (default: "
        "thumb-256, preview-1024, preview-1024-webp). Existing assets keep theirs until "
        "reprocessed (assetsReprocess).",
    )


@strawberry.type(description="The result of workspaceMediaSettingsUpdate.")
class WorkspaceMediaSettingsPayload:
    workspace: WorkspaceType | None = strawberry.field(description="The workspace.")
    media_settings: MediaSettingsType | None = strawberry.field(
        description="Its media settings after the change."
    )
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.input(
    description="Which assets to process again: those matching every filter given, in one "
    "workspace, that are READY or FAILED when the job runs."
)
class AssetsReprocessInput:
    asset_ids: list[relay.GlobalID] | None = strawberry.field(
        default=None, description="These assets (at most 1000)."
    )
    collection_id: relay.GlobalID | None = strawberry.field(
        default=None, description="The assets of this collection."
    )
    workspace_id: relay.GlobalID | None = strawberry.field(
        default=None, description="The assets of this workspace."
    )
    older_than_version: bool = strawberry.field(
        default=False,
        description="Only assets processed by an older version of processing "
        "(metadata.metadataVersion below the current one).",
    )
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_HELP)


@strawberry.type(description="The result of assetsReprocess.")
class AssetsReprocessPayload:
    job: JobType | None = strawberry.field(
        description="The asset.reprocess job: it queues one child job per asset (see children)."
    )
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.input(description="A rendition of one asset, made once and then kept.")
class AssetRenditionRequestInput:
    asset_id: relay.GlobalID = strawberry.field(description="The asset (READY, with a picture).")
    width: int = strawberry.field(
        description="Pixels wide, one of "
        + ", ".join(str(width) for width in renditions_on_demand.ALLOWED_WIDTHS)
        + "; never wider than the original. The height keeps the shape."
    )
    format: RenditionFormatEnum = strawberry.field(description="The image format.")


@strawberry.type(description="The result of assetRenditionRequest: the rendition, or its job.")
class AssetRenditionRequestPayload:
    rendition: RenditionType | None = strawberry.field(
        description="The rendition, with its download link, when it is already made."
    )
    job: JobType | None = strawberry.field(
        description="Otherwise the asset.rendition job making it: when it succeeds, ask again "
        "(or read the asset's renditions)."
    )
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


def _unset(value: Any) -> Any:
    return policy.KEEP if value is strawberry.UNSET else value


def settings_changes_of(input: WorkspaceMediaSettingsUpdateInput) -> policy.MediaSettingsChanges:
    kinds = _unset(input.allowed_kinds)
    presets = _unset(input.presets)
    return policy.MediaSettingsChanges(
        max_upload_bytes=_unset(input.max_upload_bytes),
        allowed_kinds=[kind.name.lower() for kind in kinds] if isinstance(kinds, list) else kinds,
        allow_gps=_unset(input.allow_gps),
        presets=[
            policy.PresetSpec(
                name=preset.name,
                max_side=preset.max_side,
                format=preset.format.name.lower(),
                quality=preset.quality,
            )
            for preset in presets
        ]
        if isinstance(presets, list)
        else presets,
    )


def _optional_id(id: relay.GlobalID | None, type_name: str, path: str) -> int | None:
    return None if id is None else decode_id(id, type_name, path=path)


@strawberry.type
class MediaMutations:
    @strawberry.mutation(
        description="Change what a workspace accepts and how it processes uploads (owners only)."
    )
    @either_mode
    def workspace_media_settings_update(
        self, info: Info, input: WorkspaceMediaSettingsUpdateInput
    ) -> WorkspaceMediaSettingsPayload:
        def call() -> tuple[Workspace, policy.MediaSettings]:
            pk = decode_id(input.workspace_id, "Workspace", path="workspaceId")
            workspace = workspace_for(actor=actor_of(info), workspace_id=pk, needed=Permission.READ)
            updated = policy.workspace_media_settings_update(
                workspace=workspace, changes=settings_changes_of(input), actor=actor_of(info)
            )
            return Workspace.objects.get(pk=pk), updated

        result, errors = attempt(info, call)
        if result is None:
            return WorkspaceMediaSettingsPayload(workspace=None, media_settings=None, errors=errors)
        workspace, updated = result
        return WorkspaceMediaSettingsPayload(
            workspace=workspace,  # type: ignore[arg-type]
            media_settings=MediaSettingsType.from_domain(updated),
            errors=[],
        )

    @strawberry.mutation(
        description="Process assets again (after a change of presets, or with "
        "olderThanVersion after an upgrade), through a job in the bulk lane that queues one "
        "child job per asset, so that uploads never wait behind it."
    )
    @either_mode
    def assets_reprocess(self, info: Info, input: AssetsReprocessInput) -> AssetsReprocessPayload:
        def filters() -> dict[str, Any]:
            asset_ids = input.asset_ids
            return {
                "asset_ids": None
                if asset_ids is None
                else [decode_id(id, "Asset", path="assetIds") for id in asset_ids],
                "collection_id": _optional_id(input.collection_id, "Collection", "collectionId"),
                "workspace_id": _optional_id(input.workspace_id, "Workspace", "workspaceId"),
            }

        def call() -> Job:
            return reprocess.assets_reprocess(
                actor=actor_of(info), older_than_version=input.older_than_version, **filters()
            )

        once = Once(
            key=input.idempotency_key,
            operation="assetsReprocess",
            request=request_of(input),
            workspace_of=lambda: reprocess.reprocess_workspace(actor=actor_of(info), **filters()),
            remember=lambda job: {"job": job.pk},
            recall=lambda ref: Job.objects.get(pk=ref["job"]),
        )
        job, errors = attempt_once(info, once, call)
        return AssetsReprocessPayload(job=job, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(
        description="A rendition of an asset at a width and in a format: returned at once when "
        "it is already made, otherwise made once by an asset.rendition job (interactive lane) "
        "and kept. Asking again while it is being made returns the same job. Refused with "
        "ASSET_NOT_READY, or RENDITION_NOT_SUPPORTED for a file with no picture."
    )
    @either_mode
    def asset_rendition_request(
        self, info: Info, input: AssetRenditionRequestInput
    ) -> AssetRenditionRequestPayload:
        def call() -> renditions_on_demand.RenditionRequested:
            pk = decode_id(input.asset_id, "Asset", path="assetId")
            return renditions_on_demand.asset_rendition_request(
                asset=selectors.asset_get_for(actor=actor_of(info), asset_id=pk),
                width=input.width,
                format=input.format.name.lower(),
                actor=actor_of(info),
            )

        requested, errors = attempt(info, call)
        if requested is None:
            return AssetRenditionRequestPayload(rendition=None, job=None, errors=errors)
        return AssetRenditionRequestPayload(
            rendition=requested.rendition,  # type: ignore[arg-type]
            job=requested.job,  # type: ignore[arg-type]
            errors=[],
        )
