"""Starting Django in every entry point, with configuration errors as one clear line."""

from __future__ import annotations

import os
import sys

from project.env import ConfigError


def setup_django_or_exit(program: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    try:
        django.setup()
    except ConfigError as error:
        sys.stderr.write(f"{program}: configuration error: {error}\n")
        raise SystemExit(2) from None


def load_settings_or_exit(program: str) -> None:
    """Read the settings module only (no app registry), for programs that set Django up later."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 (the access loads and checks the settings)
    except ConfigError as error:
        sys.stderr.write(f"{program}: configuration error: {error}\n")
        raise SystemExit(2) from None
