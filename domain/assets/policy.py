"""A workspace's media settings: what may be uploaded there, and how it is processed.

`Workspace.media_settings` keeps only what an owner changed (camelCase keys, as in the API);
media_settings_of() fills in the rest: the deployment's upload limit, every kind, no GPS, the
media library's presets. The deployment's limit stays a ceiling for every workspace.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from django.conf import settings
from django.db import transaction

from domain.accounts.actor import Actor
from domain.accounts.models import Permission, Workspace
from domain.accounts.selectors import require_permission
from domain.assets.errors import InvalidMediaSettings
from domain.assets.media.analysis import TEXT_TYPES
from domain.assets.media.model import DEFAULT_PRESETS, RENDITION_FORMATS, Kind, Preset
from domain.common.ids import global_id
from domain.jobs import events

MAX_PRESETS = 8
# A preset's name is part of its renditions' storage keys: keep it to safe characters.
_PRESET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")


@dataclass(frozen=True)
class MediaSettings:
    max_upload_bytes: int
    allowed_kinds: tuple[Kind, ...]
    allow_gps: bool
    presets: tuple[Preset, ...]

    def allows(self, kind: Kind) -> bool:
        return kind in self.allowed_kinds

    def as_json(self) -> dict[str, Any]:
        return {
            "maxUploadBytes": self.max_upload_bytes,
            "allowedKinds": [kind.value for kind in self.allowed_kinds],
            "allowGps": self.allow_gps,
            "presets": [_preset_json(preset) for preset in self.presets],
        }


def _preset_json(preset: Preset) -> dict[str, Any]:
    return {
        "name": preset.name,
        "maxSide": preset.max_side,
        "format": preset.format,
        "quality": preset.quality,
    }


def media_settings_of(workspace: Workspace) -> MediaSettings:
    stored: dict[str, Any] = workspace.media_settings or {}
    ceiling = settings.DEPOT_MAX_UPLOAD_BYTES
    kinds = stored.get("allowedKinds")
    presets = stored.get("presets")
    return MediaSettings(
        max_upload_bytes=min(int(stored.get("maxUploadBytes", ceiling)), ceiling),
        allowed_kinds=tuple(Kind) if kinds is None else tuple(k for k in Kind if k.value in kinds),
        allow_gps=bool(stored.get("allowGps", False)),
        presets=DEFAULT_PRESETS
        if presets is None
        else tuple(
            Preset(name=p["name"], max_side=p["maxSide"], format=p["format"], quality=p["quality"])
            for p in presets
        ),
    )


def media_settings_for(workspace_id: int) -> MediaSettings:
    return media_settings_of(Workspace.objects.only("media_settings").get(pk=workspace_id))


def kind_of(content_type: str) -> Kind:
    """The kind a content type announces (what a client declares, before any byte is seen)."""
    major = content_type.split("/", 1)[0]
    if content_type == "application/pdf":
        return Kind.PDF
    if major in ("image", "video", "audio"):
        return Kind(major)
    if major == "text" or content_type in TEXT_TYPES:
        return Kind.TEXT
    return Kind.OTHER


class _Keep(enum.Enum):
    KEEP = "KEEP"


KEEP: Final = _Keep.KEEP


@dataclass(frozen=True)
class PresetSpec:
    name: str
    max_side: int
    format: str
    quality: int = 85


@dataclass(frozen=True)
class MediaSettingsChanges:
    """What to change: KEEP leaves a setting as it is, None puts it back to its default."""

    max_upload_bytes: int | _Keep | None = KEEP
    allowed_kinds: Sequence[str] | _Keep | None = KEEP
    allow_gps: bool | _Keep | None = KEEP
    presets: Sequence[PresetSpec] | _Keep | None = KEEP


@transaction.atomic
def workspace_media_settings_update(
    *, workspace: Workspace, changes: MediaSettingsChanges, actor: Actor
) -> MediaSettings:
    """Change a workspace's media settings (owners only). They apply to uploads started and
    jobs run from now on; existing assets keep their renditions until reprocessed."""
    require_permission(actor=actor, workspace_id=workspace.pk, needed=Permission.ADMIN)
    cleaned = _clean(changes)
    # NO KEY: rows that refer to the workspace (assets, jobs, events) can still be written.
    workspace = Workspace.objects.select_for_update(no_key=True).get(pk=workspace.pk)
    stored = dict(workspace.media_settings or {})
    for key, value in cleaned.items():
        if value is None:
            stored.pop(key, None)
        else:
            stored[key] = value
    workspace.media_settings = stored
    workspace.save(update_fields=["media_settings"])
    current = media_settings_of(workspace)
    events.record(
        workspace.pk,
        "workspace.media_settings_updated",
        {"workspaceId": global_id("Workspace", workspace.pk), "mediaSettings": current.as_json()},
    )
    return current


def _clean(changes: MediaSettingsChanges) -> dict[str, Any]:
    """The stored form of each changed setting (None: back to the default), or an error with
    the path of the first bad field."""
    cleaned: dict[str, Any] = {}
    if changes.max_upload_bytes is not KEEP:
        size = changes.max_upload_bytes
        ceiling = settings.DEPOT_MAX_UPLOAD_BYTES
        if size is not None and not 1 <= size <= ceiling:
            raise InvalidMediaSettings(
                f"The upload limit is between 1 and {ceiling} bytes.", path=["maxUploadBytes"]
            )
        cleaned["maxUploadBytes"] = size
    if changes.allowed_kinds is not KEEP:
        kinds = changes.allowed_kinds
        if kinds is not None:
            known = {kind.value for kind in Kind}
            if not kinds or not set(kinds) <= known:
                raise InvalidMediaSettings(
                    f"Allow at least one kind, of: {', '.join(sorted(known))}.",
                    path=["allowedKinds"],
                )
            kinds = [kind.value for kind in Kind if kind.value in kinds]
        cleaned["allowedKinds"] = kinds
    if changes.allow_gps is not KEEP:
        cleaned["allowGps"] = changes.allow_gps
    if changes.presets is not KEEP:
        presets = changes.presets
        cleaned["presets"] = None if presets is None else _clean_presets(presets)
    return cleaned


def _clean_presets(specs: Sequence[PresetSpec]) -> list[dict[str, Any]]:
    if len(specs) > MAX_PRESETS:
        raise InvalidMediaSettings(f"At most {MAX_PRESETS} presets.", path=["presets"])
    result: list[dict[str, Any]] = []
    for index, spec in enumerate(specs):
        path = ["presets", str(index)]
        if not _PRESET_NAME.fullmatch(spec.name):
            raise InvalidMediaSettings(
                "A preset name has 1 to 48 lower-case letters, digits, - or _.",
                path=[*path, "name"],
            )
        if any(other["name"] == spec.name for other in result):
            raise InvalidMediaSettings("Preset names must be unique.", path=[*path, "name"])
        if spec.format not in RENDITION_FORMATS:
            raise InvalidMediaSettings(
                f"The format is one of {', '.join(RENDITION_FORMATS)}.", path=[*path, "format"]
            )
        if not 16 <= spec.max_side <= 8192:
            raise InvalidMediaSettings(
                "maxSide is between 16 and 8192 pixels.", path=[*path, "maxSide"]
            )
        if not 1 <= spec.quality <= 100:
            raise InvalidMediaSettings("quality is between 1 and 100.", path=[*path, "quality"])
        preset = Preset(
            name=spec.name, max_side=spec.max_side, format=spec.format, quality=spec.quality
        )
        result.append(_preset_json(preset))
    return result
