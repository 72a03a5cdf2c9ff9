from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from schema import SDL_PATH, sdl


class Command(BaseCommand):
    help = "Write schema.graphql from the code, or with --check fail if it differs."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--check", action="store_true")

    def handle(self, *args: Any, check: bool, **options: Any) -> None:
        current = sdl()
        if check:
            if not SDL_PATH.exists() or SDL_PATH.read_text() != current:
                raise CommandError("schema.graphql is out of date: run `make schema`.")
            return
        SDL_PATH.write_text(current)
        self.stdout.write(f"wrote {SDL_PATH.name}\n")
