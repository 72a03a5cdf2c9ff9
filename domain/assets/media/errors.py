"""Verdicts: why a file was refused, as a stable code a client can act on."""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    EMPTY_FILE = "EMPTY_FILE"
    CONTENT_TYPE_MISMATCH = "CONTENT_TYPE_MISMATCH"
    ACTIVE_CONTENT = "ACTIVE_CONTENT"
    UNSUPPORTED_TYPE = "UNSUPPORTED_TYPE"
    CORRUPT_FILE = "CORRUPT_FILE"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"


class MediaRejected(Exception):
    """The file is refused; `code` says why in a way that does not change between releases."""

    def __init__(self, code: Verdict, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"MediaRejected({self.code.value}, {self.message!r})"


def corrupt(what: str, error: BaseException | str) -> MediaRejected:
    # Library messages are kept (they help a person fix the file) but cut short: some quote bytes.
    detail = str(error).strip() or type(error).__name__
    return MediaRejected(Verdict.CORRUPT_FILE, f"The {what} could not be read: {detail[:200]}")
