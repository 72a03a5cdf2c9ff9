"""The fast path for bearer-token reads: the middleware lane, the one-statement admission, the
read cache (also for persisted queries sent by hash), and what must still hold on a cache hit:
credentials are checked every time, other callers never share an answer, writes invalidate."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import SyncToAsync, async_to_sync
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from domain.accounts.actor import Actor
from domain.accounts.models import ApiToken, Membership, User, Workspace
from domain.assets.editing import AssetChanges, asset_update
from domain.assets.models import Asset
from domain.common.ids import global_id
from schema import read_cache
from tests import factories
from tests.conftest import GQL
from tests.support.cache import clear_cache

QUERY = "query One($id: ID!) { asset(id: $id) { id title renditions { preset } } }"
SECURITY_HEADERS = (
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
)


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    clear_cache()
    read_cache._KNOWN.clear()
    yield
    read_cache._KNOWN.clear()


@pytest.fixture
def asset(workspace: Workspace) -> Asset:
    found = factories.asset(factories.collection(workspace), title="First")
    factories.rendition(found)
    return found


def _vars(asset: Asset) -> dict[str, Any]:
    return {"id": global_id("Asset", asset.pk)}


def _post(client: Client, body: dict[str, Any], token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(
        "/graphql/", json.dumps(body), content_type="application/json", headers=headers
    )


def _apq(query: str) -> dict[str, Any]:
    digest = hashlib.sha256(query.encode()).hexdigest()
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@pytest.mark.django_db
def test_a_cached_read_costs_one_statement(gql: GQL, token: str, asset: Asset) -> None:
    first = gql.post(QUERY, _vars(asset), token)
    with CaptureQueriesContext(connection) as queries:
        again = gql.post(QUERY, _vars(asset), token)
    assert again["X-Depot-Cache"] == "hit"
    assert again.content == first.content
    # Token, user, role and the workspace's event sequence: one statement; nothing else.
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert "secret_hash" in queries[0]["sql"]


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["revoked", "expired", "user deactivated"])
def test_withdrawn_credentials_are_refused_even_when_the_answer_is_cached(
    gql: GQL, make_token: Callable[..., str], asset: Asset, how: str
) -> None:
    secret = make_token("read")
    gql.post(QUERY, _vars(asset), secret)
    assert gql.post(QUERY, _vars(asset), secret)["X-Depot-Cache"] == "hit"
    # Straight in the database, with no event: the check must not depend on one.
    tokens = ApiToken.objects.filter(secret_hash=_secret_hash(secret))
    if how == "revoked":
        tokens.update(revoked_at=timezone.now())
    elif how == "expired":
        tokens.update(expires_at=timezone.now() - timedelta(seconds=1))
    else:
        User.objects.filter(api_tokens__in=tokens).update(is_active=False)
    refused = gql.post(QUERY, _vars(asset), secret)
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "INVALID_TOKEN"


@pytest.mark.django_db
def test_a_lost_membership_takes_effect_on_the_next_read(
    gql: GQL, make_token: Callable[..., str], asset: Asset, owner: User
) -> None:
    secret = make_token("read")
    gql.post(QUERY, _vars(asset), secret)
    assert gql.post(QUERY, _vars(asset), secret)["X-Depot-Cache"] == "hit"
    Membership.objects.filter(user=owner).delete()  # no event either
    after = gql.post(QUERY, _vars(asset), secret)
    assert after.status_code == 401  # the token acted through the membership
    assert after.json()["errors"][0]["extensions"]["code"] == "INVALID_TOKEN"
    assert "X-Depot-Cache" not in after


@pytest.mark.django_db
def test_other_tokens_never_get_the_cached_answer(
    gql: GQL,
    make_token: Callable[..., str],
    asset: Asset,
    owner: User,
    viewer_user: User,
    stranger: User,
    other_workspace: Workspace,
) -> None:
    mine = make_token("read", "write")
    expected = gql(QUERY, _vars(asset), mine)
    assert gql.post(QUERY, _vars(asset), mine)["X-Depot-Cache"] == "hit"
    # Someone else's token for another workspace, and the owner's own token there (an editor
    # there: a token of a non-member is refused outright).
    Membership.objects.create(user=owner, workspace=other_workspace, role="editor")
    for other in (
        make_token("read", user=stranger, in_workspace=other_workspace),
        make_token("read", "write", user=owner, in_workspace=other_workspace),
    ):
        response = gql.post(QUERY, _vars(asset), other)
        assert response.json()["data"]["asset"] is None
        assert "X-Depot-Cache" not in response
    # Same workspace, other permissions: the data, but computed for this caller.
    viewer = gql.post(QUERY, _vars(asset), make_token("read", user=viewer_user))
    assert "X-Depot-Cache" not in viewer
    assert viewer.json() == expected


@pytest.mark.django_db
def test_a_write_moves_the_sequence_the_bearer_statement_reads(
    gql: GQL, token: str, asset: Asset, owner: User
) -> None:
    gql.post(QUERY, _vars(asset), token)
    assert gql.post(QUERY, _vars(asset), token)["X-Depot-Cache"] == "hit"
    asset_update(asset=asset, changes=AssetChanges(title="Second"), actor=Actor(user=owner))
    after = gql.post(QUERY, _vars(asset), token)
    assert "X-Depot-Cache" not in after
    assert after.json()["data"]["asset"]["title"] == "Second"
    assert gql.post(QUERY, _vars(asset), token)["X-Depot-Cache"] == "hit"


@pytest.mark.django_db
def test_cache_hits_still_count_against_the_rate_limit(
    gql: GQL, token: str, asset: Asset, settings: Any
) -> None:
    settings.DEPOT_RATE_LIMIT_TOKEN = (3, 60)
    statuses = [gql.post(QUERY, _vars(asset), token).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


@pytest.mark.django_db
def test_a_persisted_query_sent_by_hash_alone_is_served_from_the_read_cache(
    client: Client,
    token: str,
    make_token: Callable[..., str],
    asset: Asset,
    stranger: User,
    other_workspace: Workspace,
) -> None:
    by_hash = {"variables": _vars(asset), "extensions": _apq(QUERY)}
    unknown = _post(client, by_hash, token).json()
    assert unknown["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"

    registered = _post(client, {"query": QUERY, **by_hash}, token)
    assert "X-Depot-Cache" not in registered
    hit = _post(client, by_hash, token)
    assert hit["X-Depot-Cache"] == "hit"
    assert hit.content == registered.content
    # Another process knows the hash only from the persisted-query store.
    read_cache._KNOWN.clear()
    assert _post(client, by_hash, token)["X-Depot-Cache"] == "hit"
    # And still only for callers with the same permissions and valid credentials.
    theirs = _post(client, by_hash, make_token("read", user=stranger, in_workspace=other_workspace))
    assert theirs.json()["data"]["asset"] is None
    assert "X-Depot-Cache" not in theirs
    ApiToken.objects.filter(secret_hash=_secret_hash(token)).update(revoked_at=timezone.now())
    assert _post(client, by_hash, token).status_code == 401


@pytest.mark.django_db
def test_registering_a_query_on_a_cache_hit_still_stores_it(
    client: Client, token: str, asset: Asset
) -> None:
    plain = {"query": QUERY, "variables": _vars(asset)}
    _post(client, plain, token)
    registering = _post(client, {**plain, "extensions": _apq(QUERY)}, token)
    assert registering["X-Depot-Cache"] == "hit"
    read_cache._KNOWN.clear()
    by_hash = _post(client, {"variables": _vars(asset), "extensions": _apq(QUERY)}, token)
    assert by_hash.status_code == 200
    assert by_hash.content == registering.content


@pytest.mark.django_db
def test_a_wrong_hash_is_never_answered_from_the_cache(
    client: Client, token: str, asset: Asset
) -> None:
    plain = {"query": QUERY, "variables": _vars(asset)}
    _post(client, plain, token)
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    body = _post(client, {**plain, "extensions": wrong}, token).json()
    assert body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"


class _Hops:
    """Counts sync_to_async calls by the module of the function they run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.by_module: Counter[str] = Counter()
        original = SyncToAsync.__call__

        async def counted(hop: Any, *args: Any, **kwargs: Any) -> Any:
            self.by_module[getattr(hop.func, "__module__", "?")] += 1
            return await original(hop, *args, **kwargs)

        monkeypatch.setattr(SyncToAsync, "__call__", counted)

    def middleware(self) -> int:
        return sum(
            count
            for module, count in self.by_module.items()
            if module.startswith(("django.middleware", "django.contrib", "whitenoise"))
        )


def _async_post(body: dict[str, Any], token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def post() -> Any:
        return await AsyncClient().post(
            "/graphql/", json.dumps(body), content_type="application/json", headers=headers
        )

    return async_to_sync(post)()


@pytest.mark.django_db
def test_bearer_requests_skip_the_middleware_chain_and_keep_its_headers(
    token: str, asset: Asset, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"query": QUERY, "variables": _vars(asset)}
    anonymous = _async_post(body, None)
    _async_post(body, token)
    hops = _Hops(monkeypatch)
    bearer = _async_post(body, token)
    assert bearer["X-Depot-Cache"] == "hit"
    assert hops.middleware() == 0, hops.by_module
    # The admission (rate limits, token, cache lookup) is the request's one hop of its own.
    assert hops.by_module["schema.http"] == 1, hops.by_module
    for header in SECURITY_HEADERS:
        assert bearer[header] == anonymous[header], header
    assert not bearer.cookies

    hops.by_module.clear()
    _async_post(body, None)
    assert hops.middleware() > 0  # the full chain, for requests without a token


@pytest.mark.django_db
def test_a_bearer_request_with_a_session_still_acts_as_the_token(
    client: Client, make_token: Callable[..., str], asset: Asset, stranger: User
) -> None:
    client.force_login(stranger)
    response = _post(client, {"query": QUERY, "variables": _vars(asset)}, make_token("read"))
    assert response.json()["data"]["asset"]["title"] == "First"


@pytest.mark.django_db
def test_requests_reuse_one_redis_connection_pool(
    token: str, asset: Asset, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    body = {"query": QUERY, "variables": _vars(asset)}
    _async_post(body, token)
    built: Counter[str] = Counter()
    for cls in (redis.Redis, redis.ConnectionPool, redis.Connection):
        original = cls.__init__

        def counting(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            built[type(self).__name__] += 1
            _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counting)
    for _ in range(3):
        assert _async_post(body, token)["X-Depot-Cache"] == "hit"
    assert built == Counter()
