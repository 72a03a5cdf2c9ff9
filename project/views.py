from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from project import ratelimit


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


class ThrottledLoginView(LoginView):
    """Django's login, refusing an account and address after too many failures in a window."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        identity = f"{request.POST.get('username', '').lower()}|{ratelimit.client_ip(request)}"
        verdict = ratelimit.peek("login", identity, settings.DEPOT_LOGIN_FAILURES)
        if not verdict.allowed:
            response = render(
                request,
                "registration/login.html",
                {"form": self.get_form(), "throttled": verdict.retry_after},
                status=429,
            )
            response["Retry-After"] = str(verdict.retry_after)
            return response
        response = super().post(request, *args, **kwargs)
        if response.status_code == 200:  # the form came back: the login failed
            ratelimit.hit("login", identity, settings.DEPOT_LOGIN_FAILURES)
        return response
