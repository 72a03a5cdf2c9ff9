from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from strawberry.django.views import AsyncGraphQLView

from bench.http import floor
from bench.http.sqlcount import sql_count_view
from bench.http.strawberry_default import schema

urlpatterns = [
    path("__sql__/", sql_count_view),
    path("floor/", floor.floor_view),
    path(
        "strawberry-default/",
        csrf_exempt(AsyncGraphQLView.as_view(schema=schema, graphql_ide=None)),
    ),
]
