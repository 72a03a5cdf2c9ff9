from typing import NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

# A 64-bit integer (byte sizes, counters): GraphQL's Int has only 32 bits.
BigInt = NewType("BigInt", int)

SCALAR_MAP: dict[object, ScalarDefinition] = {
    BigInt: strawberry.scalar(
        name="BigInt",
        serialize=int,
        parse_value=int,
        description="A 64-bit integer (byte sizes, counters); GraphQL's Int is only 32 bits.",
    )
}
