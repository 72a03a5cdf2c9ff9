"""The GraphQL schema: one object, shared by the HTTP view and the websocket consumer."""

from __future__ import annotations

from pathlib import Path

import strawberry
from strawberry.extensions import ParserCache, ValidationCache
from strawberry_django.optimizer import DjangoOptimizerExtension

from schema.errors import MaskUnexpectedErrors
from schema.mutations.assets import AssetMutations
from schema.mutations.jobs import JobMutations
from schema.queries import Query
from schema.subscriptions import Subscription


@strawberry.type(description="Changes. Each returns a payload with `errors` for expected failures.")
class Mutation(AssetMutations, JobMutations):
    pass


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[
        DjangoOptimizerExtension(),
        ParserCache(maxsize=256),
        ValidationCache(maxsize=256),
        MaskUnexpectedErrors,
    ],
)

SDL_PATH = Path(__file__).resolve().parent.parent / "schema.graphql"


def sdl() -> str:
    return schema.as_str().rstrip() + "\n"
