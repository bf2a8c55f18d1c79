"""The dashboard's pages."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .middleware import request_summary
from .recorder import recorder
from .tracing import is_installed, tracing_failures

RECENT_ROWS = 200


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous users go to the login page; signed-in users who are not staff get a 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (user.is_active and user.is_staff):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


@staff_required
def index(request: HttpRequest) -> HttpResponse:
    """Recent signal sends, newest first, and the recent requests that caused them."""
    events = list(recorder.events)[-RECENT_ROWS:][::-1]
    requests = [request_summary(origin) for origin in list(recorder.requests)[-RECENT_ROWS:][::-1]]
    return render(
        request,
        "signal_dashboard/index.html",
        {
            "events": events,
            "requests": requests,
            "tracing_installed": is_installed(),
            "tracing_failures": tracing_failures(),
        },
    )
