from typing import NewType

import strawberry

BigInt = strawberry.scalar(
    NewType("BigInt", int),
    serialize=int,
    parse_value=int,
    description="A 64-bit integer (byte sizes, counters); GraphQL's Int is only 32 bits.",
)
