from __future__ import annotations

import strawberry
from strawberry import relay

from domain.assets import selectors, services
from schema.context import Info, actor_of
from schema.errors import UserError, decode_id
from schema.mutations import attempt
from schema.scalars import BigInt
from schema.types.assets import AssetType, CollectionType, UploadTarget
from schema.types.jobs import JobType


@strawberry.input(description="A new collection.")
class CollectionCreateInput:
    workspace_id: relay.GlobalID = strawberry.field(description="The workspace to create it in.")
    name: str = strawberry.field(description="Its name, unique in the workspace.")
    description: str = strawberry.field(default="", description="What it will hold.")


@strawberry.type(description="The result of collectionCreate.")
class CollectionCreatePayload:
    collection: CollectionType | None = strawberry.field(description="The new collection.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.input(description="A file the client is about to upload.")
class AssetUploadStartInput:
    collection_id: relay.GlobalID = strawberry.field(description="The collection to add it to.")
    filename: str = strawberry.field(description="The file's name (kept for display only).")
    content_type: str = strawberry.field(description="The content type the client believes.")
    size: BigInt = strawberry.field(description="The exact size in bytes.")
    title: str | None = strawberry.field(
        default=None, description="A title; the file name if unset."
    )


@strawberry.type(description="The result of assetUploadStart.")
class AssetUploadStartPayload:
    asset: AssetType | None = strawberry.field(description="The new asset, awaiting its bytes.")
    upload: UploadTarget | None = strawberry.field(description="Where to post the bytes.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.input(description="An upload the client finished posting.")
class AssetUploadCompleteInput:
    asset_id: relay.GlobalID = strawberry.field(description="The asset from assetUploadStart.")


@strawberry.type(description="The result of assetUploadComplete.")
class AssetUploadCompletePayload:
    asset: AssetType | None = strawberry.field(description="The asset, now UPLOADED.")
    job: JobType | None = strawberry.field(description="The job that processes it.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type
class AssetMutations:
    @strawberry.mutation(description="Create a collection (needs write permission).")
    async def collection_create(
        self, info: Info, input: CollectionCreateInput
    ) -> CollectionCreatePayload:
        def call() -> object:
            actor = actor_of(info)
            return services.collection_create(
                workspace_id=decode_id(input.workspace_id, "Workspace", path="workspaceId"),
                name=input.name,
                description=input.description,
                actor=actor,
            )

        collection, errors = await attempt(info, call)
        return CollectionCreatePayload(collection=collection, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(
        description="Start an upload: creates the asset and returns a presigned form for the "
        "bytes, which go straight to storage. Then call assetUploadComplete."
    )
    async def asset_upload_start(
        self, info: Info, input: AssetUploadStartInput
    ) -> AssetUploadStartPayload:
        def call() -> services.UploadStarted:
            actor = actor_of(info)
            collection = selectors.collection_get_for(
                actor=actor,
                collection_id=decode_id(input.collection_id, "Collection", path="collectionId"),
            )
            return services.asset_upload_start(
                collection=collection,
                filename=input.filename,
                content_type=input.content_type,
                size=int(input.size),
                title=input.title,
                actor=actor,
            )

        started, errors = await attempt(info, call)
        if started is None:
            return AssetUploadStartPayload(asset=None, upload=None, errors=errors)
        return AssetUploadStartPayload(
            asset=started.asset,  # type: ignore[arg-type]
            upload=UploadTarget.from_domain(info, started.target),
            errors=[],
        )

    @strawberry.mutation(
        description="Finish an upload: checks the stored bytes and starts the asset.process "
        "job. Calling it again returns the same job."
    )
    async def asset_upload_complete(
        self, info: Info, input: AssetUploadCompleteInput
    ) -> AssetUploadCompletePayload:
        def call() -> services.UploadCompleted:
            actor = actor_of(info)
            asset = selectors.asset_get_for(
                actor=actor, asset_id=decode_id(input.asset_id, "Asset", path="assetId")
            )
            return services.asset_upload_complete(asset=asset, actor=actor)

        completed, errors = await attempt(info, call)
        if completed is None:
            return AssetUploadCompletePayload(asset=None, job=None, errors=errors)
        return AssetUploadCompletePayload(
            asset=completed.asset,  # type: ignore[arg-type]
            job=completed.job,  # type: ignore[arg-type]
            errors=[],
        )
