from django.apps import AppConfig


class BenchRealtimeConfig(AppConfig):
    """Installed only by bench/realtime/settings.py: registers the bench's no-op job kind and
    the floor loop's Celery task."""

    name = "bench.realtime"
    label = "bench_realtime"
    verbose_name = "Realtime benchmark"

    def ready(self) -> None:
        import os

        from bench.realtime import floor, noop  # noqa: F401  (bench.noop, bench.floor)

        if os.environ.get("BENCH_TRACE") == "1":
            from bench.realtime import trace

            trace.install()
