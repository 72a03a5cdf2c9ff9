"""Multipart uploads: start, part URLs, parts stored, complete, abort (domain.assets.multipart).

Listing the stored parts is a mutation too: it belongs to the writing flow (it needs write
permission, like every call here) and must never be answered from the read cache.
"""

from __future__ import annotations

import strawberry
from strawberry import relay

from domain.assets import multipart, multipart_store, services
from schema.context import Info, actor_of
from schema.errors import UserError
from schema.mutations import Once, attempt, attempt_once, either_mode, request_of
from schema.mutations.assets import (
    IDEMPOTENCY_HELP,
    AssetJobPayload,
    AssetUploadStartInput,
    UploadStartPayloadBase,
    asset_for,
    collection_for,
    complete_upload,
    upload_start_arguments,
)
from schema.types.uploads import MultipartUploadType, UploadedPart, UploadPartTarget


@strawberry.input(description="A file the client is about to upload in parts.")
class AssetMultipartUploadStartInput(AssetUploadStartInput):
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_HELP)


@strawberry.type(description="The result of assetMultipartUploadStart.")
class AssetMultipartUploadStartPayload(UploadStartPayloadBase):
    upload: MultipartUploadType | None = strawberry.field(
        description="The upload: its part size and count. Null when nothing is to be uploaded."
    )


@strawberry.input(description="The parts to get upload URLs for.")
class AssetMultipartUploadPartUrlsInput:
    asset_id: relay.GlobalID = strawberry.field(
        description="The asset from assetMultipartUploadStart."
    )
    part_numbers: list[int] = strawberry.field(
        description="Part numbers, 1 to partCount, at most 1000 per call."
    )


@strawberry.type(description="The result of assetMultipartUploadPartUrls.")
class AssetMultipartUploadPartUrlsPayload:
    parts: list[UploadPartTarget] | None = strawberry.field(
        description="A presigned PUT for each part asked for, by part number."
    )
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.input(description="A multipart upload to look at.")
class AssetMultipartUploadPartsInput:
    asset_id: relay.GlobalID = strawberry.field(
        description="The asset from assetMultipartUploadStart."
    )


@strawberry.type(description="The result of assetMultipartUploadParts: where an upload stands.")
class AssetMultipartUploadPartsPayload:
    upload: MultipartUploadType | None = strawberry.field(description="The upload.")
    parts: list[UploadedPart] | None = strawberry.field(
        description="The parts the object store holds, by part number."
    )
    missing_part_numbers: list[int] | None = strawberry.field(
        description="The part numbers still to upload."
    )
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.input(description="A part as its PUT answered.")
class CompletedPartInput:
    part_number: int = strawberry.field(description="The part's number.")
    etag: str = strawberry.field(description="The ETag header of its PUT's answer.")


@strawberry.input(description="A multipart upload whose parts are all uploaded.")
class AssetMultipartUploadCompleteInput:
    asset_id: relay.GlobalID = strawberry.field(
        description="The asset from assetMultipartUploadStart."
    )
    parts: list[CompletedPartInput] | None = strawberry.field(
        default=None,
        description="Every part with its ETag, to check that storage holds what was sent; "
        "omitted, the parts are those storage lists.",
    )
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_HELP)


@strawberry.input(description="A multipart upload to give up.")
class AssetMultipartUploadAbortInput:
    asset_id: relay.GlobalID = strawberry.field(
        description="The asset from assetMultipartUploadStart."
    )


@strawberry.type(description="The result of assetMultipartUploadAbort.")
class AssetMultipartUploadAbortPayload:
    deleted_asset_id: relay.GlobalID | None = strawberry.field(
        description="The asset, now deleted with its stored parts."
    )
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type
class UploadMutations:
    @strawberry.mutation(
        description="Start a multipart upload, for large files: creates the asset (same checks "
        "as assetUploadStart) and returns the part size and count. Then get part URLs, PUT "
        "the parts (in any order, in parallel, again after a failure) and complete."
    )
    @either_mode
    def asset_multipart_upload_start(
        self, info: Info, input: AssetMultipartUploadStartInput
    ) -> AssetMultipartUploadStartPayload:
        def call() -> multipart.MultipartStarted:
            return multipart.asset_multipart_upload_start(**upload_start_arguments(info, input))

        once = Once(
            key=input.idempotency_key,
            operation="assetMultipartUploadStart",
            request=request_of(input),
            workspace_of=lambda: collection_for(info, input.collection_id).workspace_id,
            remember=lambda started: {
                "asset": started.asset.pk,
                "duplicateOf": started.duplicate_of.pk if started.duplicate_of else None,
            },
            recall=lambda ref: multipart.multipart_started_again(
                ref["asset"], duplicate_of=ref.get("duplicateOf")
            ),
        )
        started, errors = attempt_once(info, once, call)
        if started is None:
            return AssetMultipartUploadStartPayload(
                asset=None, upload=None, duplicate_of=None, errors=errors
            )
        upload = started.upload
        return AssetMultipartUploadStartPayload(
            asset=started.asset,  # type: ignore[arg-type]
            upload=MultipartUploadType.from_domain(upload) if upload is not None else None,
            duplicate_of=started.duplicate_of,  # type: ignore[arg-type]
            errors=[],
        )

    @strawberry.mutation(
        description="Presigned PUT URLs for parts of a multipart upload; ask again for a part "
        "whose upload failed or whose URL expired."
    )
    @either_mode
    def asset_multipart_upload_part_urls(
        self, info: Info, input: AssetMultipartUploadPartUrlsInput
    ) -> AssetMultipartUploadPartUrlsPayload:
        def call() -> list[multipart_store.PartTarget]:
            return multipart.asset_multipart_upload_part_urls(
                asset=asset_for(info, input.asset_id),
                part_numbers=input.part_numbers,
                actor=actor_of(info),
            )

        targets, errors = attempt(info, call)
        if targets is None:
            return AssetMultipartUploadPartUrlsPayload(parts=None, errors=errors)
        return AssetMultipartUploadPartUrlsPayload(
            parts=[UploadPartTarget.from_domain(info, target) for target in targets], errors=[]
        )

    @strawberry.mutation(
        description="The parts storage holds for a multipart upload and those still missing "
        "(S3 ListParts): how a client that lost its place resumes."
    )
    @either_mode
    def asset_multipart_upload_parts(
        self, info: Info, input: AssetMultipartUploadPartsInput
    ) -> AssetMultipartUploadPartsPayload:
        def call() -> multipart.UploadProgress:
            return multipart.asset_multipart_upload_parts(
                asset=asset_for(info, input.asset_id), actor=actor_of(info)
            )

        progress, errors = attempt(info, call)
        if progress is None:
            return AssetMultipartUploadPartsPayload(
                upload=None, parts=None, missing_part_numbers=None, errors=errors
            )
        return AssetMultipartUploadPartsPayload(
            upload=MultipartUploadType.from_domain(progress.upload),
            parts=[UploadedPart.from_domain(part) for part in progress.parts],
            missing_part_numbers=progress.missing,
            errors=[],
        )

    @strawberry.mutation(
        description="Finish a multipart upload: storage joins the parts, and the asset goes on "
        "as with assetUploadComplete (the asset.process job). Refused with "
        "UPLOAD_PARTS_MISSING, UPLOAD_SIZE_MISMATCH or UPLOAD_PART_MISMATCH, every stored part "
        "kept. Calling it again returns the same job."
    )
    @either_mode
    def asset_multipart_upload_complete(
        self, info: Info, input: AssetMultipartUploadCompleteInput
    ) -> AssetJobPayload:
        reported = (
            None
            if input.parts is None
            else [multipart.ClientPart(number=p.part_number, etag=p.etag) for p in input.parts]
        )

        def call() -> services.UploadCompleted:
            return multipart.asset_multipart_upload_complete(
                asset=asset_for(info, input.asset_id), actor=actor_of(info), parts=reported
            )

        return complete_upload(info, "assetMultipartUploadComplete", input, call)

    @strawberry.mutation(
        description="Give up a multipart upload: storage drops the parts and the asset, which "
        "never had its bytes, is deleted (asking again answers NOT_FOUND)."
    )
    @either_mode
    def asset_multipart_upload_abort(
        self, info: Info, input: AssetMultipartUploadAbortInput
    ) -> AssetMultipartUploadAbortPayload:
        def call() -> int:
            return multipart.asset_multipart_upload_abort(
                asset=asset_for(info, input.asset_id), actor=actor_of(info)
            )

        deleted, errors = attempt(info, call)
        return AssetMultipartUploadAbortPayload(
            deleted_asset_id=None if deleted is None else relay.GlobalID("Asset", str(deleted)),
            errors=errors,
        )
