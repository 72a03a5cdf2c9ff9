from django.apps import AppConfig


class BenchRealtimeConfig(AppConfig):
    """Installed only by bench/realtime/settings.py: registers the bench's no-op job kind."""

    name = "bench.realtime"
    label = "bench_realtime"
    verbose_name = "Realtime benchmark"

    def ready(self) -> None:
        import os

        from bench.realtime import noop  # noqa: F401  (registers bench.noop)

        if os.environ.get("BENCH_TRACE") == "1":
            from bench.realtime import trace

            trace.install()
