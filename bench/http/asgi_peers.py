"""ASGI app of the two baselines (floor/ and strawberry-default/), one uvicorn process each."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.http.settings_peers")
application = get_asgi_application()
