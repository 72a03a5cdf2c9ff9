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


class InvalidUpload(DomainError):
    code = "INVALID_UPLOAD"


class InvalidAssetInput(DomainError):
    code = "INVALID_INPUT"
