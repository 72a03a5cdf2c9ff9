from django.urls import path

from bench.http import whatif
from bench.http.sqlcount import sql_count_view
from project.urls import urlpatterns as depot_urlpatterns

urlpatterns = [path("__sql__/", sql_count_view), *depot_urlpatterns]

whatif.apply()
