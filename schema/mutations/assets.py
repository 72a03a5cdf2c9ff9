from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from domain.assets import deletion, editing, selectors, services
from domain.assets.models import Asset, Collection
from domain.jobs.models import Job
from schema.context import Info, actor_of
from schema.errors import UserError, decode_id
from schema.mutations import Once, attempt, attempt_once, either_mode, request_of
from schema.mutations.media import MediaMutations
from schema.scalars import BigInt
from schema.types.assets import AssetType, CollectionType, UploadTarget
from schema.types.jobs import JobType

IDEMPOTENCY_HELP = "Repeat-safe: the same key with the same input returns the first result."


def collection_for(info: Info, id: relay.GlobalID, path: str = "collectionId") -> Collection:
    """The caller's collection of this id; NOT_FOUND (at `path`) for anything else."""
    pk = decode_id(id, "Collection", path=path)
    return selectors.collection_get_for(actor=actor_of(info), collection_id=pk)


def asset_for(info: Info, id: relay.GlobalID, path: str = "assetId") -> Asset:
    """The caller's asset of this id; NOT_FOUND (at `path`) for anything else."""
    pk = decode_id(id, "Asset", path=path)
    return selectors.asset_get_for(actor=actor_of(info), asset_id=pk)


@strawberry.input(description="A new collection.")
class CollectionCreateInput:
    workspace_id: relay.GlobalID = strawberry.field(description="The workspace to create it in.")
    name: str = strawberry.field(description="Its name, unique in the workspace.")
    description: str = strawberry.field(default="", description="What it will hold.")


@strawberry.input(description="Changes to a collection; omitted fields stay as they are.")
class CollectionUpdateInput:
    id: relay.GlobalID = strawberry.field(description="The collection.")
    name: str | None = strawberry.field(default=None, description="A new name.")
    description: str | None = strawberry.field(default=None, description="A new description.")


@strawberry.type(description="The result of a mutation on a collection.")
class CollectionPayload:
    collection: CollectionType | None = strawberry.field(description="The collection.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.enum(
    description="What assetUploadStart does when the bytes are already in the workspace."
)
class OnDuplicate(Enum):
    KEEP_BOTH = strawberry.enum_value(
        "KEEP_BOTH", description="Create the new asset anyway; its processing reuses the other's."
    )
    LINK = strawberry.enum_value(
        "LINK", description="Create nothing: return the existing asset, with no upload target."
    )


@strawberry.input(description="A file the client is about to upload.")
class AssetUploadStartInput:
    collection_id: relay.GlobalID = strawberry.field(description="The collection to add it to.")
    filename: str = strawberry.field(description="The file's name (kept for display only).")
    content_type: str = strawberry.field(description="The content type the client believes.")
    size: BigInt = strawberry.field(description="The exact size in bytes.")
    title: str | None = strawberry.field(
        default=None, description="A title; the file name if unset."
    )
    sha256: str | None = strawberry.field(
        default=None,
        description="The file's SHA-256 (64 hex digits), if known: processing fails with "
        "UPLOAD_CHECKSUM_MISMATCH when the stored bytes differ, and an asset of the same bytes "
        "already in the workspace is found (see onDuplicate).",
    )
    on_duplicate: OnDuplicate = strawberry.field(
        default=OnDuplicate.KEEP_BOTH,
        description="When `sha256` matches a READY asset of the workspace: KEEP_BOTH (the "
        "default) or LINK.",
    )


@strawberry.type
class UploadStartPayloadBase:
    """What assetUploadStart and assetMultipartUploadStart both answer (besides `upload`)."""

    asset: AssetType | None = strawberry.field(
        description="The new asset, awaiting its bytes; with onDuplicate LINK and a duplicate, "
        "the existing asset."
    )
    duplicate_of: AssetType | None = strawberry.field(
        description="A READY asset of the workspace with the same SHA-256, if `sha256` was given "
        "and one exists."
    )
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="The result of assetUploadStart.")
class AssetUploadStartPayload(UploadStartPayloadBase):
    upload: UploadTarget | None = strawberry.field(
        description="Where to post the bytes; null when nothing is to be uploaded (LINK)."
    )


@strawberry.input(description="An upload the client finished posting.")
class AssetUploadCompleteInput:
    asset_id: relay.GlobalID = strawberry.field(description="The asset from assetUploadStart.")
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_HELP)


@strawberry.type(description="The result of a mutation that starts a job on an asset.")
class AssetJobPayload:
    asset: AssetType | None = strawberry.field(description="The asset.")
    job: JobType | None = strawberry.field(description="The job it started.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.input(description="Changes to an asset; omitted fields stay as they are.")
class AssetUpdateInput:
    id: relay.GlobalID = strawberry.field(description="The asset.")
    title: str | None = strawberry.field(default=None, description="A new title.")
    tags: list[str] | None = strawberry.field(default=None, description="The new set of tags.")
    description: str | None = strawberry.field(default=None, description="A new description.")
    custom_metadata: JSON | None = strawberry.field(
        default=None, description="Replaces the custom metadata (a JSON object)."
    )
    custom_metadata_merge: JSON | None = strawberry.field(
        default=None,
        description="Keys to set in the custom metadata, the others kept; a key set to null is "
        "removed (a JSON merge patch of the top level). Not with customMetadata.",
    )


@strawberry.type(description="The result of assetUpdate.")
class AssetPayload:
    asset: AssetType | None = strawberry.field(description="The asset after the change.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.input(description="Assets to move into another collection of the same workspace.")
class AssetMoveInput:
    asset_ids: list[relay.GlobalID] = strawberry.field(description="The assets (at most 1000).")
    collection_id: relay.GlobalID = strawberry.field(description="Where they go.")


@strawberry.type(description="The result of assetMove.")
class AssetMovePayload:
    assets: list[AssetType] | None = strawberry.field(description="The moved assets.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.input(description="An asset or collection to delete, with its files.")
class DeleteInput:
    id: relay.GlobalID = strawberry.field(description="The asset or collection.")
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_HELP)


@strawberry.type(description="The result of a deletion: the job that removes the files.")
class DeletePayload:
    job: JobType | None = strawberry.field(description="The deleting job.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


def changes_of(input: AssetUpdateInput) -> editing.AssetChanges:
    custom: Any = input.custom_metadata
    merge: Any = input.custom_metadata_merge
    return editing.AssetChanges(
        title=input.title,
        tags=input.tags,
        description=input.description,
        custom_metadata=custom,
        custom_metadata_merge=merge,
    )


def _job_once(operation: str, input: Any, workspace_of: Any) -> Once:
    return Once(
        key=input.idempotency_key,
        operation=operation,
        request=request_of(input),
        workspace_of=workspace_of,
        remember=lambda job: {"job": job.pk},
        recall=lambda ref: Job.objects.get(pk=ref["job"]),
    )


def upload_start_arguments(info: Info, input: AssetUploadStartInput) -> dict[str, Any]:
    """What both upload starts (single and multipart) pass to their domain service."""
    return {
        "collection": collection_for(info, input.collection_id),
        "filename": input.filename,
        "content_type": input.content_type,
        "size": int(input.size),
        "title": input.title,
        "actor": actor_of(info),
        "sha256": input.sha256,
        "on_duplicate": services.OnDuplicate(input.on_duplicate.name),
    }


def complete_upload(
    info: Info, operation: str, input: Any, call: Callable[[], services.UploadCompleted]
) -> AssetJobPayload:
    """Run an upload's completion once per idempotency key: its asset and processing job."""
    once = Once(
        key=input.idempotency_key,
        operation=operation,
        request=request_of(input),
        workspace_of=lambda: asset_for(info, input.asset_id).workspace_id,
        remember=lambda done: {"asset": done.asset.pk, "job": done.job.pk},
        recall=lambda ref: services.UploadCompleted(
            asset=Asset.objects.get(pk=ref["asset"]), job=Job.objects.get(pk=ref["job"])
        ),
    )
    completed, errors = attempt_once(info, once, call)
    if completed is None:
        return AssetJobPayload(asset=None, job=None, errors=errors)
    return AssetJobPayload(
        asset=completed.asset,  # type: ignore[arg-type]
        job=completed.job,  # type: ignore[arg-type]
        errors=[],
    )


# The media mutations (settings, reprocessing) come in through this class: schema/__init__.py
# composes the root Mutation from the per-domain classes.
@strawberry.type
class AssetMutations(MediaMutations):
    @strawberry.mutation(description="Create a collection (needs write permission).")
    @either_mode
    def collection_create(self, info: Info, input: CollectionCreateInput) -> CollectionPayload:
        def call() -> Collection:
            return services.collection_create(
                workspace_id=decode_id(input.workspace_id, "Workspace", path="workspaceId"),
                name=input.name,
                description=input.description,
                actor=actor_of(info),
            )

        collection, errors = attempt(info, call)
        return CollectionPayload(collection=collection, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(description="Rename a collection or change its description.")
    @either_mode
    def collection_update(self, info: Info, input: CollectionUpdateInput) -> CollectionPayload:
        def call() -> Collection:
            return editing.collection_update(
                collection=collection_for(info, input.id, path="id"),
                name=input.name,
                description=input.description,
                actor=actor_of(info),
            )

        collection, errors = attempt(info, call)
        return CollectionPayload(collection=collection, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(
        description="Delete a collection with all its assets and their files, through a job "
        "in the bulk lane."
    )
    @either_mode
    def collection_delete(self, info: Info, input: DeleteInput) -> DeletePayload:
        def call() -> Job:
            collection = collection_for(info, input.id, path="id")
            return deletion.collection_delete(collection=collection, actor=actor_of(info))

        once = _job_once(
            "collectionDelete", input, lambda: collection_for(info, input.id, "id").workspace_id
        )
        job, errors = attempt_once(info, once, call)
        return DeletePayload(job=job, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(
        description="Start an upload: creates the asset and returns a presigned form for the "
        "bytes, which go straight to storage. Then call assetUploadComplete. Refused with "
        "ASSET_TOO_LARGE or KIND_NOT_ALLOWED by the workspace's media settings."
    )
    @either_mode
    def asset_upload_start(
        self, info: Info, input: AssetUploadStartInput
    ) -> AssetUploadStartPayload:
        def call() -> services.UploadStarted:
            return services.asset_upload_start(**upload_start_arguments(info, input))

        started, errors = attempt(info, call)
        if started is None:
            return AssetUploadStartPayload(
                asset=None, upload=None, duplicate_of=None, errors=errors
            )
        target = started.target
        return AssetUploadStartPayload(
            asset=started.asset,  # type: ignore[arg-type]
            upload=UploadTarget.from_domain(info, target) if target is not None else None,
            duplicate_of=started.duplicate_of,  # type: ignore[arg-type]
            errors=[],
        )

    @strawberry.mutation(
        description="Finish an upload: checks the stored bytes and starts the asset.process "
        "job. Calling it again returns the same job."
    )
    @either_mode
    def asset_upload_complete(self, info: Info, input: AssetUploadCompleteInput) -> AssetJobPayload:
        def call() -> services.UploadCompleted:
            asset = asset_for(info, input.asset_id)
            return services.asset_upload_complete(asset=asset, actor=actor_of(info))

        return complete_upload(info, "assetUploadComplete", input, call)

    @strawberry.mutation(description="Change an asset's title, tags, description or metadata.")
    @either_mode
    def asset_update(self, info: Info, input: AssetUpdateInput) -> AssetPayload:
        def call() -> Asset:
            asset = asset_for(info, input.id, path="id")
            return editing.asset_update(
                asset=asset, changes=changes_of(input), actor=actor_of(info)
            )

        asset, errors = attempt(info, call)
        return AssetPayload(asset=asset, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(description="Move assets into another collection of their workspace.")
    @either_mode
    def asset_move(self, info: Info, input: AssetMoveInput) -> AssetMovePayload:
        def call() -> list[Asset]:
            editing.require_move_size(len(input.asset_ids))  # before reading any of them
            assets = selectors.assets_get_for(
                actor=actor_of(info),
                asset_ids=[decode_id(id, "Asset", path="assetIds") for id in input.asset_ids],
            )
            return editing.asset_move(
                assets=assets,
                collection=collection_for(info, input.collection_id),
                actor=actor_of(info),
            )

        assets, errors = attempt(info, call)
        return AssetMovePayload(assets=assets, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(
        description="Delete an asset: it is marked DELETING at once, and a job removes its "
        "original and renditions from storage, then the asset."
    )
    @either_mode
    def asset_delete(self, info: Info, input: DeleteInput) -> DeletePayload:
        def call() -> Job:
            return deletion.asset_delete(
                asset=asset_for(info, input.id, "id"), actor=actor_of(info)
            )

        once = _job_once("assetDelete", input, lambda: asset_for(info, input.id, "id").workspace_id)
        job, errors = attempt_once(info, once, call)
        return DeletePayload(job=job, errors=errors)  # type: ignore[arg-type]
