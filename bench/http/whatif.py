"""What-if patches: bench-only monkeypatches that imitate the changes PROFILE.md suggests for
Depot, so their gain can be measured with the same harness before anyone edits Depot.

Enabled per process with BENCH_WHATIF=name[,name...] (run.sh starts a `depot-whatif` contender
on port 8204 when WHATIF is set). Never used by the `depot` contender itself.

* node-id-pk     Depot's relay types answer resolve_id_attr() with "pk" at once, instead of
                 strawberry-django 0.93 re-scanning every annotation of the type (eval_type,
                 ForwardRef, ast) on each `id` it resolves (it caches only a found NodeID).
* async-static   WhiteNoise (sync-only) replaced by an async-capable subclass, so Django runs
                 the whole middleware chain in async mode. Inconclusive in our runs: Django's
                 MiddlewareMixin middlewares hop to a thread for each process_* method anyway.
* inline-resolvers  Depot's resolver methods that never touch the database (Asset.state,
                 Asset.failure, Asset.downloadUrl, Rendition.url) run inline on the event loop,
                 as an `async def` resolver would, instead of one sync_to_async thread hop per
                 object (200 hops per dashboard request for `state` alone).
* lean-auth      one SQL statement for bearer token + user + the role in the token's workspace
                 (the Actor's permissions precomputed), and the workspace check of
                 `collections(workspaceId:)` without the extra `Workspace.objects.get`.
* cached-rules   the depth and alias limiters' validation rules built once, not per request,
                 so strawberry's ValidationCache (keyed by the rules tuple) hits again.
* lean-ratelimit each rate-limit hit is one Redis round trip (pipelined INCR + EXPIRE NX)
                 instead of two (cache.add, then cache.incr).
"""

from __future__ import annotations

import os
import types
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from whitenoise.middleware import WhiteNoiseMiddleware

ENABLED = {p.strip() for p in os.environ.get("BENCH_WHATIF", "").split(",") if p.strip()}
KNOWN = {
    "node-id-pk",
    "async-static",
    "lean-auth",
    "cached-rules",
    "lean-ratelimit",
    "inline-resolvers",
}
INLINE = {"Asset": {"state", "failure", "download_url"}, "Rendition": {"url"}}


class AsyncStaticMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise that stays on the event loop for every request that is not a static file."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any, settings: Any = None) -> None:
        if settings is None:
            from django.conf import settings as django_settings

            settings = django_settings
        super().__init__(get_response, settings)
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._is_async:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request: Any) -> Any:
        if request.path_info.startswith(self.static_prefix):
            return await sync_to_async(super().__call__)(request)
        return await self.get_response(request)


def middleware(names: list[str]) -> list[str]:
    if "async-static" not in ENABLED:
        return names
    return [
        "bench.http.whatif.AsyncStaticMiddleware"
        if n == "whitenoise.middleware.WhiteNoiseMiddleware"
        else n
        for n in names
    ]


def _node_id_pk() -> None:
    from strawberry import relay

    def subclasses(cls: type) -> list[type]:
        out = []
        for sub in cls.__subclasses__():
            out += [sub, *subclasses(sub)]
        return out

    for cls in subclasses(relay.Node):
        if cls.__module__.startswith("schema."):
            cls.resolve_id_attr = types.MethodType(lambda _cls: "pk", cls)  # type: ignore[method-assign]


def _lean_auth() -> None:
    from django.db.models import OuterRef, Subquery
    from django.utils import timezone

    import schema.http
    import schema.queries
    from domain.accounts import selectors
    from domain.accounts.actor import Actor
    from domain.accounts.errors import InvalidToken
    from domain.accounts.models import (
        ROLE_PERMISSION,
        ApiToken,
        Membership,
        Permission,
        Role,
    )
    from domain.accounts.tokens import TOKEN_PREFIX, hash_secret

    def actor_from_bearer(*, secret: str) -> Actor:
        if not secret.startswith(TOKEN_PREFIX):
            raise InvalidToken("The API token is not valid.")
        role = Membership.objects.filter(
            user_id=OuterRef("user_id"), workspace_id=OuterRef("workspace_id")
        ).values("role")[:1]
        token = (
            ApiToken.objects.select_related("user")
            .annotate(member_role=Subquery(role))
            .filter(secret_hash=hash_secret(secret), revoked_at__isnull=True)
            .first()
        )
        now = timezone.now()
        if token is None or (token.expires_at is not None and token.expires_at <= now):
            raise InvalidToken("The API token is not valid.")
        if not token.user.is_active:
            raise InvalidToken("The API token is not valid.")
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        permissions = {}
        if token.member_role:  # type: ignore[attr-defined]
            granted = ROLE_PERMISSION[Role(token.member_role)]  # type: ignore[attr-defined]
            permissions[token.workspace_id] = min(granted, token.permission)
        return Actor(user=token.user, token=token, _permissions=permissions)

    def _in_workspace(info: Any, workspace_id: Any) -> int | None:
        if workspace_id is None:
            return None
        pk = schema.queries.decode_id(workspace_id, "Workspace", path="workspaceId")
        selectors.require_permission(
            actor=schema.queries.actor_of(info), workspace_id=pk, needed=Permission.READ
        )
        return pk

    schema.http.actor_from_bearer = actor_from_bearer
    schema.queries._in_workspace = _in_workspace


def _inline_resolvers() -> None:
    import schema

    for type_name, names in INLINE.items():
        definition = schema.schema.get_type_by_name(type_name)
        for field in definition.fields:  # type: ignore[union-attr]
            if field.python_name in names and field.base_resolver is not None:
                # strawberry-django's own marker for resolvers that never query (see
                # StrawberryDjangoFieldBase.safe_resolver); `async def` has the same effect.
                field.base_resolver.wrapped_func.is_async_safe = True


def _cached_rules() -> None:
    from strawberry.extensions import AddValidationRules

    import schema

    factories = []
    for ext in schema.schema.extensions:
        if isinstance(ext, type) or not callable(ext):
            factories.append(ext)
            continue
        sample = ext()
        if type(sample) is not AddValidationRules and isinstance(sample, AddValidationRules):
            rules = list(sample.validation_rules)  # the rule classes, made once

            def factory(rules: list[Any] = rules) -> AddValidationRules:
                return AddValidationRules(rules)

            factories.append(factory)
        else:
            factories.append(ext)
    schema.schema.extensions = tuple(factories)


def _lean_ratelimit() -> None:
    import hashlib
    import time

    from django.core.cache import cache

    from project import ratelimit

    def hit(scope: str, identity: str, rate: tuple[int, int]) -> Any:
        limit, seconds = rate
        window = int(time.time() // seconds)
        digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
        key = cache.make_and_validate_key(f"rate:{scope}:{digest}:{window}")
        client = cache._cache.get_client(key, write=True)  # type: ignore[attr-defined]
        pipe = client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, seconds + 1, nx=True)
        count, _ = pipe.execute()
        retry_after = max(1, (window + 1) * seconds - int(time.time()))
        return ratelimit.Verdict(allowed=count <= limit, retry_after=retry_after)

    ratelimit.hit = hit


def apply() -> None:
    """Called from urls_depot once Django is set up (the middleware one from settings)."""
    unknown = ENABLED - KNOWN
    if unknown:
        raise SystemExit(f"BENCH_WHATIF: unknown {sorted(unknown)}; known: {sorted(KNOWN)}")
    if "node-id-pk" in ENABLED:
        _node_id_pk()
    if "lean-auth" in ENABLED:
        _lean_auth()
    if "cached-rules" in ENABLED:
        _cached_rules()
    if "lean-ratelimit" in ENABLED:
        _lean_ratelimit()
    if "inline-resolvers" in ENABLED:
        _inline_resolvers()
