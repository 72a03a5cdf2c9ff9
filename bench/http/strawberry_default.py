"""strawberry-default: strawberry-django over Depot's models, written the way its docs show
(auto fields, relay.Node, DjangoListConnection, strawberry_django.node(), AsyncGraphQLView with
DjangoOptimizerExtension and nothing else). It answers Depot's query text with Depot's JSON.

Two departures from a literal default, both needed for the same answer:
* `size` is a 64-bit BigInt: strawberry-django maps BigIntegerField to GraphQL's 32-bit Int,
  which fails at run time on sizes above 2**31 (the anchors do the same).
* The GraphQL type names are Depot's (Asset, Collection, Rendition), so the global ids match.
No authentication, as in the floor: the workspace comes from the argument. No
`from __future__ import annotations` either, as in strawberry's docs and the anchors.
"""

from collections.abc import Iterable
from typing import NewType

import strawberry
import strawberry_django
from strawberry import auto, relay
from strawberry_django.optimizer import DjangoOptimizerExtension
from strawberry_django.relay import DjangoListConnection

from domain.assets import models

BigInt = strawberry.scalar(NewType("BigInt", int), name="BigInt", serialize=int, parse_value=int)


@strawberry_django.type(models.Rendition)
class Rendition:
    preset: auto
    width: auto
    height: auto


@strawberry_django.type(models.Asset)
class Asset(relay.Node):
    title: auto
    size: BigInt  # type: ignore[valid-type]
    state: auto
    renditions: list[Rendition]


@strawberry_django.type(models.Collection)
class Collection(relay.Node):
    name: auto
    assets: DjangoListConnection[Asset] = strawberry_django.connection()


@strawberry.type
class Query:
    asset: Asset | None = strawberry_django.node()

    @strawberry_django.connection(DjangoListConnection[Collection])
    def collections(self, workspace_id: relay.GlobalID) -> Iterable[models.Collection]:
        return models.Collection.objects.filter(workspace_id=int(workspace_id.node_id))


schema = strawberry.Schema(query=Query, extensions=[DjangoOptimizerExtension()])
