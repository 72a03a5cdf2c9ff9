from __future__ import annotations

from django.conf import settings
from django.db import models

from domain.accounts.models import Workspace
from domain.common.querysets import PrefetchFriendlyQuerySet


class Collection(models.Model):
    """A named group of assets in a workspace."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="collections")
    name = models.CharField(
        max_length=200, help_text="The collection's name, unique in its workspace."
    )
    description = models.TextField(blank=True, help_text="What the collection holds.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When it was created.")
    updated_at = models.DateTimeField(auto_now=True, help_text="When it last changed.")

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="collection_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class AssetState(models.TextChoices):
    AWAITING_UPLOAD = "AWAITING_UPLOAD"
    UPLOADED = "UPLOADED"
    PROCESSING = "PROCESSING"
    READY = "READY"
    FAILED = "FAILED"
    DELETING = "DELETING"


class Asset(models.Model):
    """A file in a collection, with what Depot learnt from its bytes."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="assets")
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="assets")
    title = models.CharField(max_length=300, help_text="A display title.")
    tags = models.JSONField(default=list, blank=True, help_text="Free-form labels.")
    description = models.TextField(blank=True, help_text="A longer description.")
    custom_metadata = models.JSONField(
        default=dict, blank=True, help_text="Integrators' own fields, as a JSON object."
    )
    original_filename = models.CharField(max_length=255, help_text="The name it was uploaded as.")
    storage_key = models.CharField(max_length=300, unique=True)
    declared_content_type = models.CharField(
        max_length=120, help_text="The content type the client announced."
    )
    content_type = models.CharField(
        max_length=120, blank=True, help_text="The content type sniffed from the bytes."
    )
    size = models.BigIntegerField(help_text="Size in bytes, as announced and then verified.")
    sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the bytes, hex.")
    expected_sha256 = models.CharField(
        max_length=64, blank=True, help_text="The SHA-256 the client announced, hex, if it did."
    )
    # A digest of the settings the asset was processed with (domain.assets.processing): a later
    # upload of the same bytes reuses its results only under the same settings.
    processed_with = models.CharField(max_length=64, blank=True)
    state = models.CharField(
        max_length=20,
        choices=AssetState.choices,
        default=AssetState.AWAITING_UPLOAD,
        help_text="Where the asset is in its life.",
    )
    metadata = models.JSONField(default=dict, blank=True, help_text="What processing found.")
    failure = models.JSONField(null=True, blank=True, help_text="Why processing failed.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When it was created.")
    updated_at = models.DateTimeField(auto_now=True, help_text="When it last changed.")

    objects = PrefetchFriendlyQuerySet.as_manager()

    class Meta:
        # Prefetches (Django's and the GraphQL optimizer's) load through the base manager.
        base_manager_name = "objects"
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["collection", "-created_at"], name="asset_collection_created"),
            models.Index(fields=["workspace", "sha256"], name="asset_ws_sha256"),
            models.Index(fields=["workspace", "-created_at"], name="asset_ws_created"),
        ]

    def __str__(self) -> str:
        return self.title


class Rendition(models.Model):
    """A derived file (thumbnail, preview) made from an asset by a preset."""

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="renditions")
    preset = models.CharField(max_length=64, help_text="The preset that made it, e.g. thumb-256.")
    format = models.CharField(max_length=16, help_text="Image format, e.g. jpeg.")
    width = models.PositiveIntegerField(help_text="Width in pixels.")
    height = models.PositiveIntegerField(help_text="Height in pixels.")
    size = models.BigIntegerField(help_text="Size in bytes.")
    storage_key = models.CharField(max_length=300, unique=True)
    # Asked for through assetRenditionRequest rather than made by a preset: processing again
    # replaces the presets' renditions and leaves these alone.
    on_demand = models.BooleanField(
        default=False, help_text="Made once when asked for, not by one of the workspace's presets."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PrefetchFriendlyQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"
        ordering = ["preset"]
        constraints = [
            models.UniqueConstraint(fields=["asset", "preset"], name="rendition_unique_preset")
        ]

    def __str__(self) -> str:
        return f"{self.asset_id}:{self.preset}"


class MultipartUpload(models.Model):
    """A multipart upload under way for an asset awaiting its bytes (domain.assets.multipart).

    The row lives from assetMultipartUploadStart until the upload is completed, aborted or
    expired; the parts themselves are only in the object store."""

    asset = models.OneToOneField(Asset, on_delete=models.CASCADE, related_name="multipart_upload")
    # S3's UploadId is opaque and has no documented length limit; SeaweedFS's are 73 characters.
    upload_id = models.CharField(max_length=1024, help_text="The object store's upload id.")
    part_size = models.BigIntegerField(help_text="Bytes in every part but the last.")
    part_count = models.PositiveIntegerField(help_text="Parts in all, numbered from 1.")
    created_at = models.DateTimeField(auto_now_add=True, help_text="When it was started.")

    class Meta:
        indexes = [models.Index(fields=["created_at"], name="multipart_upload_created")]

    def __str__(self) -> str:
        return f"{self.asset_id}:{self.upload_id}"


class ObjectRemoval(models.Model):
    """An object in the store that must not outlive the rows naming it: the outbox of object
    removals (domain.assets.object_removals).

    Written in the transaction that drops (or is about to add) the row naming `key`; from
    `due_at` on, the object is deleted unless a row names it, and this row goes with it. A
    writer about to store an object at a key that may come back (a rendition's) claims it first
    (`due_at` an hour ahead), and removes the claim in the transaction that records its row."""

    key = models.CharField(max_length=300, unique=True, help_text="The object's key.")
    due_at = models.DateTimeField(help_text="When the object is deleted unless a row names it.")
    attempts = models.PositiveIntegerField(
        default=0, help_text="Removals the store refused so far."
    )
    last_error = models.TextField(blank=True, default="", help_text="The store's last refusal.")
    created_at = models.DateTimeField(auto_now_add=True, help_text="When it was scheduled.")

    class Meta:
        indexes = [models.Index(fields=["due_at"], name="object_removal_due")]

    def __str__(self) -> str:
        return self.key
