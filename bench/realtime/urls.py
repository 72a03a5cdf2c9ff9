from django.urls import path

from bench.realtime.views import noop_start
from project.urls import urlpatterns as depot_urlpatterns

urlpatterns = [path("bench/noop/", noop_start), *depot_urlpatterns]
