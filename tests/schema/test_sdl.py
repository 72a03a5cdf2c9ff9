from __future__ import annotations

from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLObjectType

from domain.common.errors import DomainError
from schema import SDL_PATH, schema, sdl
from schema.errors import ErrorCode


def test_the_committed_schema_matches_the_code() -> None:
    assert SDL_PATH.read_text() == sdl(), "schema.graphql is stale: run `make schema`"


def test_every_type_and_field_has_a_description() -> None:
    missing: list[str] = []
    for name, graphql_type in schema._schema.type_map.items():
        if isinstance(graphql_type, (GraphQLObjectType, GraphQLInputObjectType, GraphQLEnumType)):
            if name.startswith("__"):
                continue
            if not graphql_type.description:
                missing.append(name)
            fields = getattr(graphql_type, "fields", {}) or {}
            for field_name, field in fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
    assert missing == []


def _subclasses(cls: type[DomainError]) -> list[type[DomainError]]:
    found: list[type[DomainError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def test_every_domain_error_code_is_in_the_error_code_enum() -> None:
    import domain.accounts.errors
    import domain.assets.errors
    import domain.jobs.errors  # noqa: F401
    import schema.subscriptions  # noqa: F401

    codes = {DomainError.code} | {sub.code for sub in _subclasses(DomainError)}
    assert codes <= {member.value for member in ErrorCode}


def test_bad_input_has_one_code() -> None:
    # Django's field validation answered INVALID, the services INVALID_INPUT: clients had to
    # switch on both for the same kind of failure.
    assert DomainError.code == "INVALID_INPUT"
    assert "INVALID" not in {member.value for member in ErrorCode}


def test_every_media_verdict_is_in_the_error_code_enum() -> None:
    # A verdict becomes the code of a failed asset and of its asset.process job.
    from domain.assets.media import Verdict

    assert {verdict.value for verdict in Verdict} <= {member.value for member in ErrorCode}
