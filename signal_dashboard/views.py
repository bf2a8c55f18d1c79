"""The dashboard's pages: the live stream, latency, requests, the registry, and their details."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render

from . import waterfall
from .access import can_view
from .broadcast import broadcaster
from .conf import get_config
from .context import Origin
from .events import SignalEvent
from .filters import EventFilter, FilterError
from .middleware import request_summary
from .recorder import recorder
from .registry import signal_registry
from .stats import TableQuery
from .tracing import is_installed, tracing_failures

# Rows of the latency table and of the request list a page shows.
MAX_TABLE_ROWS = 100
MAX_REQUEST_ROWS = 50
# Calls listed in a receiver's detail.
RECENT_CALLS = 20


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
            "query": query,
            **tables_context(event_filter, TableQuery()),
        },
    )


def tables_context(event_filter: EventFilter, query: TableQuery) -> dict[str, Any]:
    """What the latency table and the request list show, for a page or a socket push."""
    config = get_config()
    events = list(recorder.events) if event_filter.needs_events else []
    rows = recorder.latency.table(
        query, event_filter, events, slow_ns=config["SLOW_MS"] * 1_000_000
    )
    return {
        "latency_rows": rows[:MAX_TABLE_ROWS],
        "latency_total": len(rows),
        "table": query,
        "window_seconds": recorder.latency.window_seconds,
        "from_buffer": event_filter.needs_events,
        "request_rows": [
            request_summary(origin) for origin in list(recorder.requests)[-MAX_REQUEST_ROWS:][::-1]
        ],
        "storm_threshold": recorder.latency.storm_threshold,
        "slow_ms": config["SLOW_MS"],
    }


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
    """One receiver: its latency since start, recent calls and slowest calls."""
    label = request.GET.get("label", "")
    if not label:
        return HttpResponseBadRequest("Name a receiver: ?label=module.qualname")
    store = recorder.latency
    recent = []
    for event in reversed(list(recorder.events)):
        for call in event.receivers:
            if call.label == label:
                recent.append((event, call))
        if len(recent) >= RECENT_CALLS:
            break
    histogram = store.receiver_histogram(label)
    if not histogram.count and not recent:
        raise Http404("No call of that receiver has been recorded.")
    return render(
        request,
        "signal_dashboard/_receiver.html",
        {
            "label": label,
            "summary": histogram.summary(),
            "histogram": histogram,
            "recent": recent[:RECENT_CALLS],
            "slowest": store.slowest_calls(label),
        },
    )


@dashboard_access
def request_detail(request: HttpRequest, origin_id: int) -> HttpResponse:
    """One request or command: its sends as a waterfall against its timeline."""
    origin = _find_origin(origin_id)
    return render(
        request,
        "signal_dashboard/_waterfall.html",
        {
            "summary": request_summary(origin),
            "waterfall": waterfall.build(origin, list(recorder.events)),
        },
    )


def _find_origin(origin_id: int) -> Origin:
    for origin in list(recorder.requests):
        if origin.id == origin_id:
            return origin
    raise Http404("That request is no longer in the buffer.")


@dashboard_access
def registry(request: HttpRequest) -> HttpResponse:
    """Every known signal with its receivers, and how often each fired."""
    signals = signal_registry()
    return render(
        request,
        "signal_dashboard/registry.html",
        {
            "signals": signals,
            "record_empty_sends": get_config()["RECORD_EMPTY_SENDS"],
            "receiver_count": sum(len(info.receivers) for info in signals),
            "never_fired": sum(
                1 for info in signals for receiver in info.receivers if not receiver.calls
            ),
        },
    )
