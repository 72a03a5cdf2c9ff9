"""One contender's run: seed a collection, delete it through its job, print what it took.

    PYTHONPATH=TREE python bench/deletion/measure.py --assets 1000 --label per-asset

Run by run.py, with TREE the source tree under test (its `domain`, `project` and settings) and
the environment naming the bench's database, Redis and private S3 bucket. Not a module of the
bench package on purpose: the baseline tree predates it.

Each asset gets its original and RENDITIONS renditions as real objects in the store (written
in parallel, untimed). The job runs in this process (runner.execute, as a worker runs it);
timed from its start to its end, with the SQL statements on the job's thread's connection (a
held run's lock takes a few more on another) and the S3 requests it made.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

RENDITIONS = 2


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", type=int, required=True)
    parser.add_argument("--label", required=True)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    print(json.dumps({"label": args.label, "assets": args.assets, **run(args.assets)}))


def run(count: int) -> dict[str, Any]:
    from unittest import mock

    from django.conf import settings
    from django.db import connection

    from domain.accounts.actor import Actor
    from domain.accounts.models import User
    from domain.accounts.services import workspace_create
    from domain.assets import deletion, storage
    from domain.assets.models import Asset, AssetState, Collection, Rendition
    from domain.jobs import runner

    run_id = uuid.uuid4().hex[:8]
    user = User.objects.create_user(username=f"bench-del-{run_id}")
    workspace = workspace_create(name=f"Del {run_id}", slug=f"del-{run_id}", owner=user)
    collection = Collection.objects.create(workspace=workspace, name="bench")
    prefix = f"bench-deletion/{run_id}"
    assets = Asset.objects.bulk_create(
        Asset(
            workspace=workspace,
            collection=collection,
            title=f"asset {n}",
            original_filename=f"a{n}.jpg",
            storage_key=f"{prefix}/{n}",
            declared_content_type="image/jpeg",
            content_type="image/jpeg",
            size=5,
            state=AssetState.READY,
        )
        for n in range(count)
    )
    presets = [f"preset-{r}" for r in range(RENDITIONS)]
    Rendition.objects.bulk_create(
        Rendition(
            asset=asset,
            preset=preset,
            format="jpeg",
            width=1,
            height=1,
            size=5,
            storage_key=f"{asset.storage_key}/{preset}",
        )
        for asset in assets
        for preset in presets
    )
    keys = [
        key for a in assets for key in (a.storage_key, *(f"{a.storage_key}/{p}" for p in presets))
    ]
    client = storage.internal_s3_client()
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda key: client.put_object(
                    Bucket=settings.S3_BUCKET, Key=key, Body=io.BytesIO(b"bytes")
                ),
                keys,
            )
        )
    with mock.patch("domain.jobs.dispatch.send"):
        job = deletion.collection_delete(collection=collection, actor=Actor(user=user))

    requests: list[str] = []
    client.meta.events.register(
        "before-send.s3", lambda request, **_: requests.append(request.method)
    )
    statements: list[str] = []

    def counted(execute: Any, sql: str, *args: Any) -> Any:
        statements.append(sql)
        return execute(sql, *args)

    # Not CaptureQueriesContext: Django's query log keeps the last 9,000.
    with connection.execute_wrapper(counted):
        started = time.perf_counter()
        runner.execute(job.pk)
        seconds = time.perf_counter() - started
    made = len(requests)
    job.refresh_from_db()
    left = client.list_objects_v2(Bucket=settings.S3_BUCKET, Prefix=prefix).get("KeyCount", 0)
    return {
        "seconds": seconds,
        "state": job.state,
        "result": job.result,
        "statements": len(statements),
        "s3_requests": made,
        "objects": len(keys),
        "objects_left": left,
        "rows_left": Asset.objects.filter(collection_id=collection.pk).count(),
    }


if __name__ == "__main__":
    main()
