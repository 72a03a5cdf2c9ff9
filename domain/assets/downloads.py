"""Download links to an asset's files, and what the store may serve them as.

Until processing has vouched for the bytes (READY), the original is served as an attachment of
unknown type (application/octet-stream): a browser saves it and runs nothing, whatever the
client declared. Once READY it is served as the type sniffed from its bytes, inline only when
a browser would not run it (storage.shown_inline). A failure that removed the original (see
errors.ORIGINAL_REMOVED), or found it missing, leaves no link at all. Renditions are pictures
Depot made: shown inline.
"""

from __future__ import annotations

from domain.assets import storage
from domain.assets.errors import ORIGINAL_REMOVED, UploadMissing
from domain.assets.media.model import RENDITION_FORMATS
from domain.assets.models import Asset, AssetState, Rendition

_GONE = ORIGINAL_REMOVED | {UploadMissing.code}
# The fields these functions read (for the GraphQL optimizer's `only`).
ORIGINAL_FIELDS = ["storage_key", "state", "content_type", "failure", "original_filename"]
RENDITION_FIELDS = ["storage_key", "format"]


def original_url(asset: Asset) -> str | None:
    """A link to the original that expires, or None when there is nothing to serve."""
    if asset.state in (AssetState.AWAITING_UPLOAD, AssetState.DELETING):
        return None
    if asset.state == AssetState.FAILED and (asset.failure or {}).get("code") in _GONE:
        return None
    sniffed = asset.content_type if asset.state == AssetState.READY else ""
    return storage.download_url(
        asset.storage_key, content_type=sniffed or None, filename=asset.original_filename
    )


def rendition_url(rendition: Rendition) -> str:
    return storage.download_url(
        rendition.storage_key, content_type=RENDITION_FORMATS.get(rendition.format)
    )
