"""The dashboard's pages: the live stream and the detail of one send."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from .access import can_view
from .broadcast import broadcaster
from .conf import get_config
from .events import SignalEvent
from .filters import EventFilter, FilterError
from .middleware import request_summary
from .recorder import recorder
from .tracing import is_installed, tracing_failures


def dashboard_access(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous users go to the login page; signed-in users who may not watch get a 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not can_view(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


@dashboard_access
def index(request: HttpRequest) -> HttpResponse:
    """The live stream: recent sends under the filter in the query string, then live ones."""
    config = get_config()
    error = None
    try:
        event_filter = EventFilter.parse(request.GET)
    except FilterError as exc:
        event_filter, error = EventFilter(), str(exc)
    events = list(recorder.events)
    rows = [
        row for row in (event.as_row() for event in reversed(events)) if event_filter.matches(row)
    ][: config["MAX_ROWS"]]
    query = urlencode(event_filter.to_query())
    return render(
        request,
        "signal_dashboard/index.html",
        {
            "rows": rows,
            "filter": event_filter,
            "error": error,
            "senders": sorted({event.sender_label for event in events}),
            "ws_url": f"/{config['WEBSOCKET_PATH']}" + (f"?{query}" if query else ""),
            "max_rows": config["MAX_ROWS"],
            "dropped": broadcaster.dropped,
            "tracing_installed": is_installed(),
            "tracing_failures": tracing_failures(),
            "requests": [request_summary(origin) for origin in list(recorder.requests)[-20:][::-1]],
        },
    )


@dashboard_access
def event_detail(request: HttpRequest, event_id: str) -> HttpResponse:
    """One send: payload, each receiver's timing and outcome, nested sends, its origin."""
    events = list(recorder.events)
    event = _find(events, event_id)
    children = [child for child in events if child.parent is event]
    parent = event.parent
    return render(
        request,
        "signal_dashboard/_detail.html",
        {
            "event": event,
            "children": children,
            "parent": parent,
            "origin": event.origin.as_dict(),
        },
    )


def _find(events: list[SignalEvent], event_id: str) -> SignalEvent:
    for event in events:
        if event.uid == event_id:
            return event
    raise Http404("That send is no longer in the buffer.")


@dashboard_access
def receiver_detail(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError


@dashboard_access
def request_detail(request: HttpRequest, request_id: str) -> HttpResponse:
    raise NotImplementedError


@dashboard_access
def registry(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError
