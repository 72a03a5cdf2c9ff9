"""ASGI app of the two baselines (floor/ and strawberry-default/), one uvicorn process each."""

import os

from django.core.asgi import get_asgi_application

from project.collector import tune_the_collector

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.http.settings_peers")
application = get_asgi_application()
# The same collector settings as Depot's server (project/asgi.py): a process setting, not
# part of what is compared.
tune_the_collector()
