from django.apps import AppConfig


class AssetsConfig(AppConfig):
    name = "domain.assets"
    label = "assets"
    verbose_name = "Assets"

    def ready(self) -> None:
        # Registers the asset job handlers with the job registry.
        from domain.assets import deletion, processing, reprocess  # noqa: F401
