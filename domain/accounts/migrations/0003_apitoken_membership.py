# A token is bound to the membership row it acts through (ApiToken.membership), so a member
# removed and added again does not bring their old tokens back.
#
# Online (docs/operations.md, "Migrations"): the old release goes on issuing tokens without
# the link, and deleting memberships without knowing of it (hence no constraint in the
# database), while this runs and until its processes are gone; the new release takes an
# unbound token as acting through its user's membership that is older than the token. On
# Postgres the column is a catalogue change and its index is built CONCURRENTLY
# (domain/common/online_schema.py), outside a transaction (hence atomic = False). Then the
# existing tokens are bound by that same rule, a batch per transaction: a token answers as it
# did, except one whose membership was deleted and made again since it was issued, which had
# come back to life and is refused from now on.

from django.db import migrations, models, transaction
from django.db.models import OuterRef, Subquery

import domain.accounts.models
from domain.common.online_schema import AddIndexedFieldOnline

BATCH = 1000


def bind_tokens_to_their_memberships(apps, schema_editor):
    ApiToken = apps.get_model("accounts", "ApiToken")
    Membership = apps.get_model("accounts", "Membership")
    older_membership = Membership.objects.filter(
        user_id=OuterRef("user_id"),
        workspace_id=OuterRef("workspace_id"),
        created_at__lte=OuterRef("created_at"),
    ).values("pk")[:1]
    unbound = ApiToken.objects.filter(membership__isnull=True, revoked_at__isnull=True)
    last = 0
    while True:
        batch = list(
            unbound.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:BATCH]
        )
        if not batch:
            return
        with transaction.atomic(using=schema_editor.connection.alias):
            unbound.filter(pk__in=batch).update(membership_id=Subquery(older_membership))
        last = batch[-1]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0002_workspace_media_settings"),
    ]

    operations = [
        AddIndexedFieldOnline(
            model_name="apitoken",
            name="membership",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                help_text="The membership it acts through; revoked when that is deleted.",
                null=True,
                on_delete=domain.accounts.models.revoke_its_tokens,
                related_name="api_tokens",
                to="accounts.membership",
            ),
        ),
        migrations.RunPython(bind_tokens_to_their_memberships, migrations.RunPython.noop),
    ]
