"""The GraphQL schema: one object, shared by the HTTP view and the websocket consumer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import strawberry
from django.conf import settings
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter

from schema.errors import MarkExecution, MaskUnexpectedErrors
from schema.execution import DepotExecutionContext
from schema.limits import QueryLimits
from schema.mutations.accounts import AccountMutations
from schema.mutations.assets import AssetMutations
from schema.mutations.bulk import BulkMutations
from schema.mutations.jobs import JobMutations
from schema.mutations.uploads import UploadMutations
from schema.optimizer_aliases import install as merge_aliases_in_the_optimizer
from schema.optimizer_plans import DepotOptimizer
from schema.parsing import ReportingParserCache
from schema.persisted import PersistedQueries
from schema.queries import Query
from schema.scalars import SCALAR_MAP
from schema.subscriptions import Subscription

merge_aliases_in_the_optimizer()


@strawberry.type(description="Changes. Each returns a payload with `errors` for expected failures.")
class Mutation(AccountMutations, AssetMutations, BulkMutations, JobMutations, UploadMutations):
    pass


# The limiters' validation rules are built once: the validation cache is keyed on the rule
# classes, and a limiter made per request would make a new class each time and never hit.
_LIMIT_RULES = (
    QueryDepthLimiter(max_depth=settings.DEPOT_GRAPHQL_MAX_DEPTH).validation_rules
    + MaxAliasesLimiter(max_alias_count=settings.DEPOT_GRAPHQL_MAX_ALIASES).validation_rules
    + (DisableIntrospection().validation_rules if not settings.DEPOT_GRAPHQL_INTROSPECTION else [])
)


class _RememberingNameConverter(NameConverter):
    """Remembers each Python name's GraphQL name. The optimizer looks fields up by GraphQL
    name on every request, converting the name of each field of the type it walks until one
    matches (about 100 conversions for one asset with its renditions)."""

    def __init__(self) -> None:
        super().__init__(auto_camel_case=True)
        self._converted: dict[str, str] = {}

    def apply_naming_config(self, name: str) -> str:
        converted = self._converted.get(name)
        if converted is None:
            converted = self._converted[name] = super().apply_naming_config(name)
        return converted


def _extensions() -> list[Any]:
    # Factories: a fresh extension per operation. The parser and validation caches live at
    # module level in strawberry, so they are shared across requests all the same.
    extensions: list[Any] = [
        PersistedQueries,
        lambda: MaxTokensLimiter(max_token_count=settings.DEPOT_GRAPHQL_MAX_TOKENS),
        lambda: AddValidationRules(list(_LIMIT_RULES)),
    ]
    extensions += [
        lambda: ReportingParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
        QueryLimits,
        DepotOptimizer,
        MaskUnexpectedErrors,
        MarkExecution,
    ]
    return extensions


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=_extensions(),
    execution_context_class=DepotExecutionContext,
    config=StrawberryConfig(
        name_converter=_RememberingNameConverter(),
        scalar_map=SCALAR_MAP,
        relay_max_results=settings.DEPOT_GRAPHQL_MAX_PAGE_SIZE,
        disable_field_suggestions=not settings.DEPOT_GRAPHQL_INTROSPECTION,
        batching_config={"max_operations": settings.DEPOT_GRAPHQL_MAX_BATCH},
    ),
)

# strawberry-django adds these operators to every filter input without descriptions; the SDL is
# what clients read, so they get one here.
_FILTER_OPERATORS = {
    "AND": "Match this filter as well.",
    "OR": "Match this filter instead.",
    "NOT": "Exclude what this filter matches.",
    "DISTINCT": "Drop duplicate rows from the result.",
}
_ordering = schema._schema.type_map.get("Ordering")
if _ordering is not None and not _ordering.description:
    _ordering.description = "A sort direction, with where nulls go."
for _type in schema._schema.type_map.values():
    if _type.name.endswith("Filter") and hasattr(_type, "fields"):
        for _name, _field in _type.fields.items():
            if _name in _FILTER_OPERATORS and not _field.description:
                _field.description = _FILTER_OPERATORS[_name]

SDL_PATH = Path(__file__).resolve().parent.parent / "schema.graphql"


def sdl() -> str:
    return schema.as_str().rstrip() + "\n"
