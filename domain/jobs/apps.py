from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "domain.jobs"
    label = "jobs"
    verbose_name = "Jobs and events"
