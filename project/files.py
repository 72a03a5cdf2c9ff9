"""Local-storage stand-ins for S3's presigned POST, GET and part PUT (embedded mode only).

They accept exactly what the signed policy allows, like S3 would, so clients use one code path.
When the disk is full they answer 507 INSUFFICIENT_STORAGE and keep nothing of the upload: the
asset still awaits its bytes, and the same URL can be used again once there is room.
"""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Callable

from django.conf import settings
from django.core import signing
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from domain.assets import multipart_store, storage

logger = logging.getLogger(__name__)

# Room for the form's other fields and multipart boundaries around the file itself.
FORM_OVERHEAD = 64 * 1024
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"code": code, "message": message}, status=status)


def _insufficient_storage(
    view: Callable[..., HttpResponse],
) -> Callable[..., HttpResponse]:
    """A full disk (or quota) is the server's condition, not the client's mistake: 507, as
    WebDAV has it, so a client retries later. What the view wrote is removed where it failed
    (storage.write_object, multipart_local.store_local_part)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except OSError as error:
            if error.errno not in _DISK_FULL:
                raise
            logger.warning("local storage is full: %s refused (%s)", request.path, error)
            return _error(
                507,
                "INSUFFICIENT_STORAGE",
                "The server has no room to store the upload now; nothing was kept. Try again "
                "later.",
            )

    return wrapped


class _SizeLimit(FileUploadHandler):
    """Stops reading a body that is larger than the policy could allow, before it is stored."""

    def __init__(self, request: HttpRequest, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


@csrf_exempt
@require_POST
@_insufficient_storage
def local_upload(request: HttpRequest) -> HttpResponse:
    # The policy is not readable before the body is parsed, so the body is capped at the
    # configured maximum; the exact size is checked against the policy afterwards.
    limit = settings.DEPOT_MAX_UPLOAD_BYTES
    if int(request.META.get("CONTENT_LENGTH") or 0) > limit + FORM_OVERHEAD:
        return _error(400, "ENTITY_TOO_LARGE", "The upload is larger than allowed.")
    limiter = _SizeLimit(request, limit)
    request.upload_handlers.insert(0, limiter)
    try:
        policy = storage.read_upload_policy(request.POST.get("policy", ""))
    except signing.SignatureExpired:
        return _error(403, "POLICY_EXPIRED", "The upload form has expired.")
    except signing.BadSignature:
        return _error(403, "POLICY_INVALID", "The upload form's signature is not valid.")
    upload = request.FILES.get("file")
    if limiter.received > limit:
        return _error(400, "ENTITY_TOO_LARGE", "The upload is larger than allowed.")
    if request.POST.get("key") != policy["key"] or upload is None:
        return _error(400, "INVALID_FORM", "The form's key or file is missing or altered.")
    if request.POST.get("Content-Type") != policy["type"]:
        return _error(403, "POLICY_CONDITION_FAILED", "The content type is not the signed one.")
    if upload.size != policy["size"]:
        return _error(400, "ENTITY_SIZE_MISMATCH", "The file's size is not the announced size.")
    storage.write_object(policy["key"], upload, policy["type"])
    return HttpResponse(status=204)


@require_GET
def local_download(request: HttpRequest, token: str) -> HttpResponseBase:
    """The file with the type and disposition the link was signed with (storage.download_url),
    never a type guessed from the key or sniffed by the browser."""
    try:
        download = storage.read_download_token(token)
    except signing.BadSignature:
        return _error(403, "LINK_INVALID", "The link is not valid or has expired.")
    try:
        handle = storage.open_file(download.key)
    except FileNotFoundError:
        return _error(404, "NOT_FOUND", "No such file.")
    response = FileResponse(handle, content_type=download.content_type)
    response["Content-Disposition"] = download.disposition
    response["X-Content-Type-Options"] = "nosniff"
    return response


@csrf_exempt
@require_http_methods(["PUT"])
@_insufficient_storage
def local_upload_part(request: HttpRequest, token: str) -> HttpResponse:
    """One part of a multipart upload (S3's UploadPart): the body, of exactly the signed size,
    is streamed to the upload's part area; the answer carries the part's ETag, as on S3."""
    try:
        part = multipart_store.read_part_token(token)
    except signing.SignatureExpired:
        return _error(403, "POLICY_EXPIRED", "The part URL has expired.")
    except signing.BadSignature:
        return _error(403, "POLICY_INVALID", "The part URL's signature is not valid.")
    length = str(request.META.get("CONTENT_LENGTH") or "")
    if not length.isdigit():
        return _error(411, "MISSING_CONTENT_LENGTH", "Send the part with a Content-Length.")
    if int(length) != part.size:
        # S3 refuses it too: the presigned URL signs the Content-Length.
        return _error(400, "ENTITY_SIZE_MISMATCH", f"This part has exactly {part.size} bytes.")
    try:
        etag = multipart_store.store_local_part(part, request)
    except multipart_store.UploadGone:
        return _error(404, "NO_SUCH_UPLOAD", "The upload was completed or aborted.")
    except ValueError:
        return _error(400, "INCOMPLETE_BODY", "The body ended before Content-Length bytes.")
    response = HttpResponse(status=200)
    response["ETag"] = etag
    return response
