from django.conf import settings
from django.contrib.auth import views as auth_views
from django.urls import path

from project import files, views
from schema import schema
from schema.http import DepotGraphQLView

urlpatterns = [
    path(
        "graphql/",
        DepotGraphQLView.as_view(
            schema=schema,
            graphql_ide="graphiql" if settings.DEPOT_GRAPHIQL else None,
            allow_queries_via_get=True,
        ),
        name="graphql",
    ),
    path("uploads/local/", files.local_upload, name="local-upload"),
    path("uploads/local/parts/<str:token>/", files.local_upload_part, name="local-upload-part"),
    path("files/<str:token>/", files.local_download, name="local-download"),
    path("healthz/", views.health, name="health"),
    path("login/", views.ThrottledLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.dashboard, name="dashboard"),
]
