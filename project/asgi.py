"""The ASGI application: HTTP through Django, GraphQL websockets through Channels."""

from __future__ import annotations

import gc

from project.boot import setup_django_or_exit

setup_django_or_exit("asgi")

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.urls import path  # noqa: E402

from realtime.consumer import DepotWSConsumer  # noqa: E402
from schema import schema  # noqa: E402

# The youngest generation is collected every GC_GEN0_THRESHOLD allocations (CPython: 700).
GC_GEN0_THRESHOLD = 14000

django_application = get_asgi_application()

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": AuthMiddlewareStack(
            URLRouter([path("graphql/", DepotWSConsumer.as_asgi(schema=schema))])
        ),
    }
)


def _tune_the_collector() -> None:
    """A server with many open sockets holds a large, long-lived heap (each socket's consumer,
    handler, subscription tasks...), and CPython's collector walks all of it: at 1,000
    subscribers it took half the server's CPU and its full collections stalled every fan-out
    for ~1 s (bench/realtime). Everything alive after start-up (modules, the schema, Django) is
    frozen out of its reach, and the youngest generation is collected 20 times less often;
    reference counting still frees almost everything at once, the collector only finds cycles.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


_tune_the_collector()
