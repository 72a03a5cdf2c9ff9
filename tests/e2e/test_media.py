"""The media library behind a real worker: a PDF gets its page count and renditions, an SVG
with a script is refused. Uploads go through GraphQL and SeaweedFS as a client's would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from domain.common.ids import global_id
from tests.domain.media import corpus
from tests.e2e.conftest import Tenant
from tests.e2e.flow import COMPLETE, download, read_asset, start_upload
from tests.support.client import GraphQLClient
from tests.support.processes import ManagedProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.services]


def _processed(client: GraphQLClient, tenant: Tenant, content: bytes, content_type: str) -> Any:
    collection = global_id("Collection", tenant.collection.pk)
    asset_id = start_upload(client, collection, content, content_type)
    result = client.data(COMPLETE, {"i": {"assetId": asset_id}})["assetUploadComplete"]
    assert result["errors"] == [], result
    wait_for(
        lambda: read_asset(client, asset_id)["state"] in {"READY", "FAILED"},
        60,
        what="the asset processed",
    )
    return read_asset(client, asset_id)


def test_a_pdf_and_a_hostile_svg_through_a_worker(
    tenant: Tenant,
    start_web: Callable[..., str],
    start_worker: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    start_worker(beat=False)
    client = GraphQLClient(start_web(), tenant.token)

    pdf = corpus.pdf(tmp_path / "doc.pdf", ["One", "Two", "Three"], title="Spec", author="Ada")
    asset = _processed(client, tenant, pdf.read_bytes(), "application/pdf")
    assert asset["state"] == "READY", asset["failure"]
    assert asset["contentType"] == "application/pdf"
    assert (asset["metadata"]["kind"], asset["metadata"]["pageCount"]) == ("pdf", 3)
    renditions = {r["preset"]: r for r in asset["renditions"]}
    assert {"thumb-256", "preview-1024", "preview-1024-webp"} <= set(renditions)
    thumb = renditions["thumb-256"]
    assert max(thumb["width"], thumb["height"]) == 256
    assert download(thumb["url"])[:3] == b"\xff\xd8\xff"
    assert download(renditions["preview-1024-webp"]["url"])[8:12] == b"WEBP"

    svg = _processed(client, tenant, corpus.SVG_SCRIPT, "image/svg+xml")
    assert svg["state"] == "FAILED"
    assert svg["failure"]["code"] == "ACTIVE_CONTENT"
    assert svg["renditions"] == []
