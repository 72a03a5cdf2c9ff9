from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from domain.accounts.actor import Actor
from domain.accounts.models import ApiToken, Membership, Role, TokenScope, User, Workspace
from domain.accounts.services import api_token_create, membership_add, workspace_create
from domain.assets.models import Collection
from domain.assets.services import collection_create

DEMO_TOKEN_NAME = "demo (make run)"  # noqa: S105 (a label)


class Command(BaseCommand):
    help = "Create the demo user, workspace and collection if missing, and a fresh API token."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo")

    @transaction.atomic
    def handle(self, *args: Any, username: str, password: str, **options: Any) -> None:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_user(username=username, password=password)
        elif not user.is_active or not user.check_password(password):
            # The login printed below must work, whatever an earlier run or a person changed.
            user.is_active = True
            user.set_password(password)
            user.save(update_fields=["is_active", "password"])
        workspace = Workspace.objects.filter(slug="demo").first()
        if workspace is None:
            workspace = workspace_create(name="Demo", slug="demo", owner=user)
        elif not Membership.objects.filter(
            workspace=workspace, user=user, role=Role.OWNER
        ).exists():
            # Someone else's workspace took the slug (or the demo user was removed from it).
            membership_add(workspace=workspace, user=user, role=Role.OWNER)
        if not Collection.objects.filter(workspace=workspace).exists():
            collection_create(
                workspace_id=workspace.pk,
                name="Photos",
                description="A first collection to upload into.",
                actor=Actor(user=user),
            )
        # A secret is shown only once, so each start makes a new token and retires the last.
        ApiToken.objects.filter(workspace=workspace, name=DEMO_TOKEN_NAME).delete()
        _, secret = api_token_create(
            workspace=workspace,
            user=user,
            name=DEMO_TOKEN_NAME,
            scopes=[TokenScope.READ, TokenScope.WRITE],
        )
        self.stdout.write(f"login:     {username} / {password}\n")
        self.stdout.write(f"API token: {secret}\n")
