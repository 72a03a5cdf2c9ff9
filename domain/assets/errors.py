from domain.common.errors import DomainError


class CollectionNameTaken(DomainError):
    code = "NAME_TAKEN"


class UploadTooLarge(DomainError):
    code = "ASSET_TOO_LARGE"


class UploadMissing(DomainError):
    """assetUploadComplete was called but no object is stored at the asset's key."""

    code = "UPLOAD_NOT_FOUND"


class UploadSizeMismatch(DomainError):
    code = "UPLOAD_SIZE_MISMATCH"


class UploadChecksumMismatch(DomainError):
    """The stored bytes' SHA-256 is not the one the client announced."""

    code = "UPLOAD_CHECKSUM_MISMATCH"


class KindNotAllowed(DomainError):
    """The workspace's media settings do not accept this kind of file."""

    code = "KIND_NOT_ALLOWED"


class InvalidMediaSettings(DomainError):
    code = "INVALID_INPUT"


class InvalidUpload(DomainError):
    code = "INVALID_UPLOAD"


class InvalidAssetInput(DomainError):
    code = "INVALID_INPUT"


class UploadPartsMissing(DomainError):
    """A multipart upload was completed before every part was stored."""

    code = "UPLOAD_PARTS_MISSING"


class UploadPartMismatch(DomainError):
    """A part's ETag is not the one the client sent: it was uploaded again since."""

    code = "UPLOAD_PART_MISMATCH"


class AssetNotReady(DomainError):
    """The asset has not been processed (or failed): there is nothing to make a rendition of."""

    code = "ASSET_NOT_READY"


class RenditionNotSupported(DomainError):
    """The asset has no picture to make a rendition of (sound, text, an SVG...)."""

    code = "RENDITION_NOT_SUPPORTED"


class ActiveContent(DomainError):
    """A file a browser would run (HTML, script): refused at the door by its declared type or
    extension, and by processing from its bytes."""

    code = "ACTIVE_CONTENT"


# Failures after which processing has removed the original from storage: there is nothing to
# download, and nothing to process again.
ORIGINAL_REMOVED = frozenset({ActiveContent.code, UploadChecksumMismatch.code})
