"""Write the bench's users, workspaces and tokens into the fresh, migrated database.

    DJANGO_SETTINGS_MODULE=bench.realtime.settings .venv/bin/python -m bench.realtime.seed OUT.json

One user, WORKSPACES workspaces it owns (each case of the run gets its own, so no case sees
another's subscribers or events), and one read+write API token per workspace (a Depot token is
limited to its workspace). Writes {"workspaces": [{"pk", "gid", "token"}, ...]} to OUT.json.
"""

from __future__ import annotations

import json
import sys

WORKSPACES = 16


def seed() -> dict[str, list[dict[str, object]]]:
    import django

    django.setup()
    from django.db import transaction

    from domain.accounts.models import TokenScope, User
    from domain.accounts.services import api_token_create, workspace_create
    from domain.common.ids import global_id

    out = []
    with transaction.atomic():
        user = User.objects.create_user(username="bench-rt", email="bench-rt@example.com")
        for n in range(WORKSPACES):
            workspace = workspace_create(name=f"RT {n}", slug=f"rt-{n}", owner=user)
            _token, secret = api_token_create(
                workspace=workspace,
                user=user,
                name=f"bench {n}",
                scopes=[TokenScope.READ, TokenScope.WRITE],
            )
            out.append(
                {"pk": workspace.pk, "gid": global_id("Workspace", workspace.pk), "token": secret}
            )
    return {"workspaces": out}


if __name__ == "__main__":
    data = seed()
    with open(sys.argv[1], "w") as f:
        json.dump(data, f, indent=1)
    print(f"seeded {len(data['workspaces'])} workspaces")
