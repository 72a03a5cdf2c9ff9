from django.urls import path

from bench.realtime.floor import floor_start
from bench.realtime.views import noop_start
from project.urls import urlpatterns as depot_urlpatterns

urlpatterns = [
    path("bench/noop/", noop_start),
    path("bench/floor/", floor_start),
    *depot_urlpatterns,
]
