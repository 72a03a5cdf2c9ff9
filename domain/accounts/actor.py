"""Who is calling: a signed-in user, or a user acting through an API token."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Q

from domain.accounts.models import ROLE_PERMISSION, ApiToken, Membership, Permission, Role, User


@dataclass
class Actor:
    """The caller of one request or one websocket connection.

    `permissions` maps workspace id to what the caller may do there: a user's role in each of
    their workspaces, or, through a token, the token's one workspace capped by both the token's
    scopes and the user's role. It is computed once per request.
    """

    user: User | None
    token: ApiToken | None = None
    _permissions: dict[int, Permission] | None = field(default=None, repr=False)

    @property
    def is_authenticated(self) -> bool:
        return self.user is not None

    @property
    def permissions(self) -> dict[int, Permission]:
        if self._permissions is None:
            self._permissions = self._load_permissions()
        return self._permissions

    def _load_permissions(self) -> dict[int, Permission]:
        if self.user is None:
            return {}
        memberships = Membership.objects.filter(user=self.user)
        if self.token is not None:
            memberships = memberships.filter(
                _acting_membership(self.token), workspace_id=self.token.workspace_id
            )
        result: dict[int, Permission] = {}
        for workspace_id, role in memberships.values_list("workspace_id", "role"):
            permission = ROLE_PERMISSION[Role(role)]
            if self.token is not None:
                permission = min(permission, self.token.permission)
            result[workspace_id] = permission
        return result

    def reload(self) -> None:
        """Load the permissions again (after a change to the caller's own memberships)."""
        self._permissions = None
        self._permissions = self._load_permissions()

    def workspace_ids(self, needed: Permission = Permission.READ) -> list[int]:
        return [ws for ws, granted in self.permissions.items() if granted >= needed]

    def can(self, workspace_id: int, needed: Permission) -> bool:
        return self.permissions.get(workspace_id, 0) >= needed


def _acting_membership(token: ApiToken) -> Q:
    """The membership a token acts through, as the bearer statement reads it
    (domain.accounts.selectors): its own row, or for a token without the link, its user's
    membership in its workspace that is older than the token."""
    if token.membership_id is not None:
        return Q(pk=token.membership_id)
    return Q(created_at__lte=token.created_at)


ANONYMOUS = Actor(user=None)
