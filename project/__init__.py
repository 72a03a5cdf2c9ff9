# Load the Celery app with Django, so that dispatches from web processes use its broker.
from project.celery import app as celery_app

__all__ = ["celery_app"]
