from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


class User(AbstractUser):
    """A person who signs in to Depot. Workspaces are reached through memberships."""


class Workspace(models.Model):
    """A tenant: every collection, asset, job and event belongs to exactly one workspace."""

    name = models.CharField(max_length=120, help_text="The workspace's display name.")
    slug = models.SlugField(max_length=64, unique=True, help_text="A short unique handle.")
    created_at = models.DateTimeField(auto_now_add=True, help_text="When it was created.")
    # Only what an owner changed; domain.assets.policy fills in the defaults, so a default
    # that changes (a setting, the media library's presets) reaches every other workspace.
    media_settings = models.JSONField(
        default=dict, blank=True, help_text="Upload and processing settings that differ."
    )

    def __str__(self) -> str:
        return self.slug


class Role(models.TextChoices):
    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"


class Permission(models.IntegerChoices):
    """What a caller may do in a workspace; each level includes the ones below it."""

    READ = 1
    WRITE = 2
    ADMIN = 3


ROLE_PERMISSION = {
    Role.VIEWER: Permission.READ,
    Role.EDITOR: Permission.WRITE,
    Role.OWNER: Permission.ADMIN,
}


class Membership(models.Model):
    """A user's role in one workspace."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(
        max_length=16, choices=Role.choices, help_text="owner, editor or viewer."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "workspace"], name="membership_unique_user")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.workspace_id} as {self.role}"


def revoke_its_tokens(collector: Any, field: Any, tokens: Any, using: str) -> None:
    """When a membership is deleted through the ORM, whatever deletes it (member_remove, the
    admin, a shell, the cascade of its user or workspace), its live tokens are marked revoked,
    so that they are listed as what they are. They are dead either way: a token acts through
    its membership row, and a membership made later for the same user is another row.

    member_remove revokes them first itself, with their token.revoked events; a deletion outside
    the services records no event (nor member.removed), as it does for nothing else. The link
    stays: which membership a token was issued under."""
    live = [token for token in tokens if token.revoked_at is None]
    collector.add_field_update(ApiToken._meta.get_field("revoked_at"), timezone.now(), live)


class TokenScope(models.TextChoices):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


SCOPE_PERMISSION = {
    TokenScope.READ: Permission.READ,
    TokenScope.WRITE: Permission.WRITE,
    TokenScope.ADMIN: Permission.ADMIN,
}


class ApiToken(models.Model):
    """A secret an integrator sends as `Authorization: Bearer ...`.

    Only a SHA-256 of the secret is stored; the secret is shown once, when it is created. A token
    acts for the user who made it, in one workspace, never beyond that user's own role there.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_tokens")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    # The membership (of that user in that workspace) the token acts through, from its issue
    # on: the bearer lookup takes the role from this row only, so once it is deleted (by any
    # means) the token is dead, and a membership made again is another row. Null for a token
    # the previous release issued during a deploy, which acts through its user's membership
    # there that is older than the token. No constraint in the database: the previous
    # release, during the deploy, deletes memberships without knowing of the link (a
    # constraint would fail its memberRemove); an id that names no row is a dead token,
    # and ids are not used again.
    membership = models.ForeignKey(
        Membership,
        null=True,
        blank=True,
        on_delete=revoke_its_tokens,
        db_constraint=False,
        related_name="api_tokens",
        help_text="The membership it acts through; revoked when that is deleted.",
    )
    name = models.CharField(max_length=120, help_text="What the token is for.")
    prefix = models.CharField(max_length=16, help_text="The first characters, to recognise it.")
    secret_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list, help_text="Any of read, write, admin.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="When it stops working.")
    last_used_at = models.DateTimeField(null=True, blank=True, help_text="When it was last used.")
    revoked_at = models.DateTimeField(null=True, blank=True, help_text="When it was revoked.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def permission(self) -> Permission:
        granted = [SCOPE_PERMISSION[TokenScope(scope)] for scope in self.scopes]
        return max(granted, default=Permission.READ)
