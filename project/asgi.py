"""The ASGI application: HTTP through Django, GraphQL websockets through Channels."""

from __future__ import annotations

from project.boot import setup_django_or_exit

setup_django_or_exit("asgi")

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from project.asgi_handler import DepotASGIHandler  # noqa: E402
from project.collector import tune_the_collector  # noqa: E402
from realtime.consumer import DepotWSConsumer  # noqa: E402
from schema import schema  # noqa: E402

# Django's get_asgi_application(), with Depot's handler (two thread hops fewer per bearer
# GraphQL request); setup_django_or_exit above did django.setup().
django_application = DepotASGIHandler()

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": AuthMiddlewareStack(
            URLRouter([path("graphql/", DepotWSConsumer.as_asgi(schema=schema))])
        ),
    }
)


tune_the_collector()
