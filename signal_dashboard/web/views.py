"""The dashboard's pages: the live stream, latency, requests, the registry, and their details."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseGone,
)
from django.shortcuts import render
from django.views.decorators.http import require_POST

from ..backends import backend
from ..capture import tasks
from ..capture.context import HOST, PID
from ..capture.events import Row
from ..capture.failures import tracing_failures
from ..capture.finding import KINDS, Finding
from ..capture.hygiene import hygiene
from ..capture.patch import is_installed
from ..conf import get_config
from ..record.broadcast import broadcaster
from ..record.filters import ORIGIN_KIND_CHOICES, EventFilter, FilterError
from ..record.recorder import recorder
from ..record.stats.table import TableQuery
from . import waterfall
from .access import dashboard_access
from .reading import other_request_summary, page_state, recent_rows, request_summary, tables_context
from .registry import doubled_receivers, signal_registry

# Calls listed in a receiver's detail.
RECENT_CALLS = 20


@dashboard_access
def index(request: HttpRequest) -> HttpResponse:
    """The live stream: recent sends under the filter in the query string, then live ones."""
    config = get_config()
    error = None
    try:
        event_filter = EventFilter.parse(request.GET, ignore=TableQuery.PARAMS)
    except FilterError as exc:
        event_filter, error = EventFilter(), f"{exc} Showing every event instead."
    try:
        table = TableQuery.parse(request.GET)
    except ValueError as exc:
        table, error = TableQuery(), error or f"{exc} Showing the default latency table."
    events = list(recorder.events)
    rows = [row for row in recent_rows() if event_filter.matches(row)][: config["MAX_ROWS"]]
    state = page_state(event_filter, table)
    return render(
        request,
        "signal_dashboard/index.html",
        {
            "rows": rows,
            "filter": event_filter,
            "error": error,
            "senders": sorted({row["sender"] for row in rows} | {e.sender_label for e in events}),
            "transport": backend().status(),
            "recording": backend().recording(),
            "ws_url": f"/{config['WEBSOCKET_PATH']}" + state["page_query"],
            "origin_kinds": ORIGIN_KIND_CHOICES,
            "max_rows": config["MAX_ROWS"],
            "dropped": broadcaster.dropped,
            "tracing_installed": is_installed(),
            "tracing_failures": tracing_failures(),
            **state,
            **tables_context(event_filter, table),
        },
    )


@dashboard_access
def event_detail(request: HttpRequest, event_id: str) -> HttpResponse:
    """One send: payload, each receiver's timing and outcome, nested sends, its origin."""
    events = list(recorder.events)
    for event in events:
        if event.uid == event_id:
            context = {
                "event": event,
                "children": [child for child in events if child.parent is event],
                "parent": event.parent,
                "origin": event.origin.as_dict(),
                "enqueued_by": tasks.enqueued_by(event.origin.as_dict()),
            }
            return render(request, "signal_dashboard/_detail.html", context)
    for finding in list(recorder.findings):
        if finding.id == event_id:
            return render(request, "signal_dashboard/_finding.html", {"finding": finding.as_dict()})
    # Another process's send: what the backend kept of it.
    history_id = request.GET.get("h", "")
    data = None
    if history_id:
        try:
            data = backend().other_event(history_id)
        except Exception as error:
            return HttpResponse(f"Redis unreachable: {error}", status=503)
    if data is None or data.get("id") != event_id:
        return HttpResponseGone("That send is no longer in the buffer.")
    if data.get("type") in KINDS:  # a signal-hygiene finding
        return render(request, "signal_dashboard/_finding.html", {"finding": data})
    # Its nested sends, and the send it was made in, from the rows the page lists (by their
    # parent_id): publishing an event costs nothing more for them.
    rows = recent_rows()
    parent_id = data["parent_id"]
    context = {
        "event": _recorded(data),
        "children": [_listed(row) for row in reversed(rows) if row["parent_id"] == event_id],
        "parent": next((_listed(row) for row in rows if row["id"] == parent_id), None),
        "origin": data["origin"],
        "enqueued_by": tasks.enqueued_by(data["origin"]),
    }
    return render(request, "signal_dashboard/_detail.html", context)


def _listed(row: Row) -> SimpleNamespace:
    """A row the page lists with the attributes the detail shows of a related send."""
    return SimpleNamespace(
        uid=row["id"],
        signal_label=row["signal"],
        sender_label=row["sender"],
        duration_ns=row["duration_ns"],
        history_id=row.get("history_id"),
    )


def _recorded(data: dict[str, Any]) -> SimpleNamespace:
    """An event of another process (its ``as_dict()``) with the attributes the detail shows."""
    receivers = [
        SimpleNamespace(
            label=call["receiver"],
            location=call["location"],
            is_async=call["is_async"],
            duration_ns=call["duration_ns"],
            result=call["result"],
            ok=call["error"] is None,
            error=None if call["error"] is None else SimpleNamespace(**call["error"]),
        )
        for call in data["receivers"]
    ]
    return SimpleNamespace(
        uid=data["id"],
        signal_label=data["signal"],
        sender_label=data["sender"],
        method=data["method"],
        timestamp=data["timestamp"],
        duration_ns=data["duration_ns"],
        payload=data["payload"],
        receivers=receivers,
    )


@dashboard_access
def receiver_detail(request: HttpRequest) -> HttpResponse:
    """One receiver: its latency since start, recent calls and slowest calls."""
    label = request.GET.get("label", "")
    if not label:
        return HttpResponseBadRequest("Name a receiver: ?label=module.qualname")
    store = backend().latency_store()
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
def request_detail(request: HttpRequest, origin_key: str) -> HttpResponse:
    """One request, command or task run: its sends as a waterfall against its timeline. A
    key "host:pid:id" names another process's, which the backend has."""
    parts = origin_key.split(":")
    if len(parts) == 1 and parts[0].isdigit():
        host, pid, origin_id = HOST, PID, int(parts[0])
    elif len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        host, pid, origin_id = parts[0], int(parts[1]), int(parts[2])
    else:
        raise Http404("No such request.")
    if (host, pid) != (HOST, PID):
        return _other_request(request, host, pid, origin_id)
    origin = next((o for o in list(recorder.requests) if o.id == origin_id), None)
    if origin is None:
        return HttpResponseGone("That request is no longer in the buffer.")
    return render(
        request,
        "signal_dashboard/_waterfall.html",
        {
            "summary": request_summary(origin),
            "waterfall": waterfall.build(origin, list(recorder.events)),
        },
    )


def _other_request(request: HttpRequest, host: str, pid: int, origin_id: int) -> HttpResponse:
    """Another process's request, command or task run, from what the backend has of it."""
    try:
        summary = other_request_summary(host, pid, origin_id)
        events = backend().origin_events(host, pid, origin_id) if summary else []
    except Exception as error:
        return HttpResponse(f"Redis unreachable: {error}", status=503)
    if summary is None:
        return HttpResponseGone("That request is no longer in the buffer.")
    context = {"summary": summary, "waterfall": waterfall.build_recorded(summary, events)}
    return render(request, "signal_dashboard/_waterfall.html", context)


@dashboard_access
def registry(request: HttpRequest) -> HttpResponse:
    """Every known signal with its receivers, and how often each fired."""
    signals = signal_registry()
    findings = list(recorder.findings)
    return render(
        request,
        "signal_dashboard/registry.html",
        {
            "signals": signals,
            "lost": [finding for finding in findings if finding.kind == "lost"][::-1],
            "missed": [finding for finding in findings if finding.kind == "disconnect_missed"][
                ::-1
            ],
            "runtime_connects": sorted(hygiene.runtime_connects.items()),
            "doubled": _doubled_with_locations(signals, findings),
            "record_empty_sends": get_config()["RECORD_EMPTY_SENDS"],
            "receiver_count": sum(len(info.receivers) for info in signals),
            "never_fired": sum(
                1 for info in signals for receiver in info.receivers if not receiver.calls
            ),
        },
    )


def _doubled_with_locations(signals: list[Any], findings: list[Finding]) -> list[dict[str, Any]]:
    """The doubled receivers, each with its connect() locations when tracing saw them."""
    connected_at = {
        (finding.signal, finding.receiver): finding.locations
        for finding in findings
        if finding.kind == "doubled"
    }
    return [
        {**vars(doubled), "connected_at": connected_at.get((doubled.signal, doubled.receiver), [])}
        for doubled in doubled_receivers(signals)
    ]


@require_POST
@dashboard_access
def recording(request: HttpRequest) -> HttpResponse:
    """Start or stop tracing in every process (``on``: true or false); staff only."""
    if not request.user.is_staff:
        return HttpResponseForbidden("Only staff users can start or stop recording.")
    on = request.POST.get("on")
    if on not in ("true", "false"):
        return HttpResponseBadRequest("on must be true or false.")
    switch = backend().set_recording(on == "true", request.user.get_username())
    return render(request, "signal_dashboard/_recording.html", {"recording": switch, "oob": True})
