"""ASGI app of the two baselines (floor/ and strawberry-default/), one uvicorn process each."""

import os

from django.core.asgi import get_asgi_application

from project.collector import tune_the_collector

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.http.settings_peers")
application = get_asgi_application()
# The same collector settings as Depot's server (project/asgi.py): a process setting, not
# part of what is compared.
tune_the_collector()


def _plain_django_querysets() -> None:
    """The baselines measure plain Django and strawberry-django: Depot's models hand out
    `PrefetchFriendlyQuerySet` (domain/common/querysets.py), which is Depot's own
    optimisation, so here they hand out Django's QuerySet again (related managers included:
    they subclass the default manager's class)."""
    from django.db.models import QuerySet

    from domain.assets.models import Asset, Rendition

    for model in (Asset, Rendition):
        type(model._default_manager)._queryset_class = QuerySet


_plain_django_querysets()
