from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


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
