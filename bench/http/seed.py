"""Write the fixed benchmark dataset into the (fresh, migrated) benchmark database through
Depot's own models and services, then write what the harness needs into bench/http/.run/.

    DJANGO_SETTINGS_MODULE=bench.http.settings_depot DATABASE_URL=... \
        .venv/bin/python -m bench.http.seed

1 workspace, 1 user (owner) with a read-scoped API token, 50 collections x 200 assets x 3
renditions (10,000 assets, 30,000 renditions), as in ../shared/bench-anchors. Deterministic:
collection names and asset creation times are seeded permutations (so "by name" and "newest
first" differ from primary-key order), sizes go up to 5e9 (above 2**31).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUN = Path(os.environ.get("BENCH_RUN_DIR", HERE / ".run"))

COLLECTIONS = 50
ASSETS_PER_COLLECTION = 200
RENDITIONS = [("poster-1024", 1024, 576), ("preview-512", 512, 288), ("thumb-256", 256, 144)]
SINGLE_ASSET_INDEX = 4241  # the 4242nd asset created
STATES = ["FAILED", "PROCESSING", "UPLOADED"] + ["READY"] * 7


def seed() -> dict[str, str]:
    from django.db import connection, transaction

    from domain.accounts.models import TokenScope, User
    from domain.accounts.services import api_token_create, workspace_create
    from domain.assets.models import Asset, Collection, Rendition
    from domain.common.ids import global_id

    rng = random.Random(20240601)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    with transaction.atomic():
        user = User.objects.create_user(username="bench", email="bench@example.com")
        workspace = workspace_create(name="Bench", slug="bench", owner=user)
        _token, secret = api_token_create(
            workspace=workspace, user=user, name="bench", scopes=[TokenScope.READ]
        )
        names = list(range(COLLECTIONS))
        rng.shuffle(names)
        collections = Collection.objects.bulk_create(
            Collection(workspace=workspace, name=f"collection {n:03d}", created_by=user)
            for n in names
        )
        total = COLLECTIONS * ASSETS_PER_COLLECTION
        minutes = list(range(total))
        rng.shuffle(minutes)
        assets = []
        for c, collection in enumerate(collections):
            for a in range(ASSETS_PER_COLLECTION):
                n = len(assets)
                state = STATES[n % len(STATES)]
                assets.append(
                    Asset(
                        workspace=workspace,
                        collection=collection,
                        title=f"asset {c:02d}-{a:03d}",
                        tags=[f"t{n % 5}", f"t{n % 11}"],
                        original_filename=f"IMG_{n:05d}.jpg",
                        storage_key=f"{workspace.pk}/{n}/original",
                        declared_content_type="image/jpeg",
                        content_type="image/jpeg" if state != "UPLOADED" else "",
                        size=rng.randint(10_000, 5_000_000_000),
                        sha256=hashlib.sha256(f"asset-{n}".encode()).hexdigest(),
                        state=state,
                        metadata={
                            "width": 4000,
                            "height": 2250,
                            "exif": {"iso": 100 * (1 + n % 8)},
                        },
                        failure={"code": "CORRUPT_FILE", "message": "bad bytes"}
                        if state == "FAILED"
                        else None,
                        created_by=user,
                    )
                )
        assets = Asset.objects.bulk_create(assets, batch_size=2000)
        # created_at is auto_now_add, which bulk_create overwrites with now(): set it after.
        for n, asset in enumerate(assets):
            asset.created_at = base + timedelta(minutes=minutes[n])
        Asset.objects.bulk_update(assets, ["created_at"], batch_size=2000)
        Rendition.objects.bulk_create(
            (
                Rendition(
                    asset=asset,
                    preset=preset,
                    format="jpeg",
                    width=width,
                    height=height,
                    size=rng.randint(1_000, 2_000_000),
                    storage_key=f"{workspace.pk}/{asset.pk}/renditions/{preset}.jpeg",
                )
                for asset in assets
                for preset, width, height in RENDITIONS
            ),
            batch_size=5000,
        )
    with connection.cursor() as cursor:
        for model in (Collection, Asset, Rendition):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    counts = {
        "collections": Collection.objects.count(),
        "assets": Asset.objects.count(),
        "renditions": Rendition.objects.count(),
        "assets_above_2**31": Asset.objects.filter(size__gt=2**31).count(),
    }
    print("seeded", json.dumps(counts))
    return {
        "token": secret,
        "workspace_id": global_id("Workspace", workspace.pk),
        "asset_id": global_id("Asset", assets[SINGLE_ASSET_INDEX].pk),
    }


def write_run_files(state: dict[str, str]) -> None:
    """The token (a file the harness reads) and the two POST bodies every contender gets."""
    bodies = RUN / "bodies"
    bodies.mkdir(parents=True, exist_ok=True)
    (RUN / "token").write_text(state["token"] + "\n")
    (RUN / "token").chmod(0o600)
    queries = HERE / "queries"
    requests = {
        "dashboard": {
            "operationName": "Dashboard",
            "query": (queries / "dashboard.graphql").read_text(),
            "variables": {"workspaceId": state["workspace_id"], "collections": 20, "assets": 10},
        },
        "asset": {
            "operationName": "AssetById",
            "query": (queries / "asset.graphql").read_text(),
            "variables": {"id": state["asset_id"]},
        },
    }
    for name, body in requests.items():
        (bodies / f"{name}.json").write_text(json.dumps(body))
    print(f"wrote {RUN / 'token'} and {bodies}/{{dashboard,asset}}.json")


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.http.settings_depot")
    import django

    django.setup()
    write_run_files(seed())
    return 0


if __name__ == "__main__":
    sys.exit(main())
