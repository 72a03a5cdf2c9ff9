from __future__ import annotations

from typing import Any

import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Run Depot: migrate, optionally seed the demo, start the embedded worker when the broker "
        "is in memory, and serve HTTP and websockets with uvicorn."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--demo", action="store_true", help="Create the demo workspace.")

    def handle(self, *args: Any, host: str, port: int, demo: bool, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        url = f"http://{host}:{port}/"
        self.stdout.write(f"Depot at {url}  (GraphQL: {url}graphql/)\n")
        if demo:
            call_command("seed_demo", stdout=self.stdout)
        if settings.DEPOT_EMBEDDED_WORKER:
            from project.embedded import start_embedded_worker

            start_embedded_worker()
        self.stdout.flush()
        uvicorn.run("project.asgi:application", host=host, port=port, lifespan="off")
