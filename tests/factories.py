"""Rows for tests, made directly (the services are tested on their own)."""

from __future__ import annotations

import io
import itertools
import uuid
from typing import Any
from unittest import mock

from domain.accounts.models import Workspace
from domain.assets import storage
from domain.assets.models import Asset, AssetState, Collection, Rendition
from domain.jobs.models import Job
from domain.jobs.services import job_create
from tests import media

_counter = itertools.count(1)


def collection(workspace: Workspace, name: str | None = None) -> Collection:
    return Collection.objects.create(workspace=workspace, name=name or f"c{next(_counter)}")


def asset(in_collection: Collection, **fields: Any) -> Asset:
    n = next(_counter)
    values: dict[str, Any] = {
        "workspace_id": in_collection.workspace_id,
        "collection": in_collection,
        "title": f"asset {n}",
        "original_filename": f"a{n}.jpg",
        "storage_key": f"{in_collection.workspace_id}/test/{n}",
        "declared_content_type": "image/jpeg",
        "content_type": "image/jpeg",
        "size": 1000 + n,
        "state": AssetState.READY,
    }
    values.update(fields)
    return Asset.objects.create(**values)


def rendition(of: Asset, preset: str = "thumb-256") -> Rendition:
    return Rendition.objects.create(
        asset=of,
        preset=preset,
        format="jpeg",
        width=256,
        height=192,
        size=999,
        storage_key=f"{of.storage_key}/{preset}",
    )


def uploaded_jpeg(workspace: Workspace, *, key_prefix: str = "tests/uploaded") -> Asset:
    """An UPLOADED asset whose original (a 600x400 JPEG) is in the store, for processing."""
    content = media.jpeg(600, 400)
    uploaded = asset(
        collection(workspace),
        storage_key=f"{key_prefix}-{uuid.uuid4().hex}",
        state=AssetState.UPLOADED,
        size=len(content),
        content_type="",
    )
    storage.write_object(uploaded.storage_key, io.BytesIO(content), "image/jpeg")
    return uploaded


def asset_job(asset: Asset, kind: str, **parameters: Any) -> Job:
    """A job of `kind` on the asset, queued by the service and not handed to any broker: the
    test runs it itself (domain.jobs.runner.execute)."""
    with mock.patch("domain.jobs.dispatch.send"):
        return job_create(
            workspace_id=asset.workspace_id,
            kind=kind,
            parameters={"asset_id": asset.pk, **parameters},
            created_by_id=None,
        )
