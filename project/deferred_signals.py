"""Django's request signals, sent in a request's first thread hop (a bearer GraphQL request's
admission, or the sync middleware chain) instead of in two thread hops of their own
(project/asgi_handler.py says why and when)."""

from __future__ import annotations

from typing import Any

from django.core import signals
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

_PENDING = "_depot_request_started"  # on the request: the deferred send of request_started
_DEFERRED = "_depot_signals_deferred"  # on the request: the handler closes it early
CLOSED = "_depot_closed"  # on a response closed in the admission hop


def defer_request_started(
    request: HttpRequest, *, sender: type, scope: dict[str, Any], close_early: bool
) -> None:
    """`close_early`: the hop that makes the final response may close it (a bearer request,
    whose response no middleware sees after the view); else the handler closes it."""
    if close_early:
        request.__dict__[_DEFERRED] = True
    request.__dict__[_PENDING] = lambda: signals.request_started.send(sender=sender, scope=scope)


def begin_request(request: HttpRequest) -> None:
    """Send the request's deferred `request_started`, if it still has one."""
    send_started = request.__dict__.pop(_PENDING, None)
    if send_started is not None:
        send_started()


def close_in_this_hop(request: HttpRequest, response: HttpResponseBase) -> None:
    """Close a final response now, in the hop that made it, when the handler deferred the
    request's signals (Django's test client and WSGI close responses themselves)."""
    if request.__dict__.get(_DEFERRED):
        close_final(response)


def close_final(response: HttpResponseBase) -> None:
    """Close a response whose content is final (not streaming) before it is sent."""
    if isinstance(response, HttpResponse) and not getattr(response, CLOSED, False):
        response.close()
        setattr(response, CLOSED, True)
