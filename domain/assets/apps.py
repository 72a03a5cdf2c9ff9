from django.apps import AppConfig


class AssetsConfig(AppConfig):
    name = "domain.assets"
    label = "assets"
    verbose_name = "Assets"

    def ready(self) -> None:
        # Registers the asset job handlers with the job registry.
        from domain.assets import (  # noqa: F401
            deletion,
            processing,
            renditions_on_demand,
            reprocess,
        )
