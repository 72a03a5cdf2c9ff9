from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie


def health(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


@login_required
@ensure_csrf_cookie
def dashboard(request: HttpRequest) -> HttpResponse:
    """The dashboard's page; its script is the Vite build in frontend/dist, as static files."""
    index = settings.BASE_DIR / "frontend" / "dist" / "index.html"
    if index.exists():
        return HttpResponse(index.read_text(), content_type="text/html")
    return render(request, "dashboard_missing.html", status=200)
