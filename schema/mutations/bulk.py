from __future__ import annotations

from enum import Enum

import strawberry

from domain.assets import editing
from domain.common.errors import NotFound
from schema.context import Info, actor_of
from schema.errors import ErrorCode, UserError, decode_id
from schema.mutations import attempt, either_mode
from schema.mutations.assets import AssetUpdateInput, changes_of
from schema.types.assets import AssetType


@strawberry.enum(description="What a bulk mutation does when some rows are invalid.")
class BulkErrorPolicy(Enum):
    ALL_OR_NOTHING = "ALL_OR_NOTHING"
    APPLY_VALID = "APPLY_VALID"


@strawberry.input(description="One asset's changes in a bulk update.")
class AssetBulkUpdateItem(AssetUpdateInput):
    """The same fields as assetUpdate's input, as a row of assetsBulkUpdate."""


@strawberry.input(description="Many assets' changes in one call (up to 5000 rows).")
class AssetsBulkUpdateInput:
    items: list[AssetBulkUpdateItem] = strawberry.field(description="The rows, in order.")
    error_policy: BulkErrorPolicy = strawberry.field(
        default=BulkErrorPolicy.ALL_OR_NOTHING,
        description="ALL_OR_NOTHING changes nothing if any row is invalid; APPLY_VALID applies "
        "the valid rows and reports the others.",
    )


@strawberry.type(description="A row of a bulk mutation that was not applied, and why.")
class BulkRowError:
    index: int = strawberry.field(description="The row's position in `items`, from 0.")
    code: ErrorCode = strawberry.field(description="What went wrong, as a stable code.")
    message: str = strawberry.field(description="A human-readable explanation.")
    path: list[str] | None = strawberry.field(description="The field in the row, if any.")


@strawberry.type(description="The result of assetsBulkUpdate.")
class AssetsBulkUpdatePayload:
    updated_count: int = strawberry.field(description="How many rows were applied.")
    assets: list[AssetType] = strawberry.field(
        description="The updated assets, each once, in the order of their first row."
    )
    row_errors: list[BulkRowError] = strawberry.field(description="Rows that were not applied.")
    errors: list[UserError] = strawberry.field(description="Why the whole call failed, if it did.")


def _item(item: AssetBulkUpdateItem) -> editing.BulkItem:
    try:
        asset_id: int | None = decode_id(item.id, "Asset")
    except NotFound:
        asset_id = None  # reported as that row's NOT_FOUND, like any other missing asset
    return editing.BulkItem(asset_id=asset_id, changes=changes_of(item))


@strawberry.type
class BulkMutations:
    @strawberry.mutation(
        description="Update many assets' titles, tags, descriptions or custom metadata at once, "
        "with a choice of error policy; each rejected row is reported with its index."
    )
    @either_mode
    def assets_bulk_update(
        self, info: Info, input: AssetsBulkUpdateInput
    ) -> AssetsBulkUpdatePayload:
        def call() -> editing.BulkResult:
            return editing.assets_bulk_update(
                items=[_item(item) for item in input.items],
                all_or_nothing=input.error_policy == BulkErrorPolicy.ALL_OR_NOTHING,
                actor=actor_of(info),
            )

        result, errors = attempt(info, call)
        if result is None:
            return AssetsBulkUpdatePayload(updated_count=0, assets=[], row_errors=[], errors=errors)
        return AssetsBulkUpdatePayload(
            updated_count=result.applied_rows,
            assets=result.updated,  # type: ignore[arg-type]
            row_errors=[
                BulkRowError(
                    index=row.index, code=ErrorCode(row.code), message=row.message, path=row.path
                )
                for row in result.errors
            ],
            errors=[],
        )
