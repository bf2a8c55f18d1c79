"""Downloads of the recent events (NDJSON) and the latency statistics (JSON)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from ..backends import backend
from ..capture.context import suspended
from ..conf import get_config
from ..record.filters import EventFilter, FilterError
from ..record.recorder import recorder
from ..record.stats.table import GROUPS, TableQuery
from .access import dashboard_access

EVENTS_FILENAME = "signal-events.ndjson"
STATS_FILENAME = "signal-stats.json"

# The table parameters that apply to a download holding every group.
_STATS_PARAMS = tuple(name for name in TableQuery.PARAMS if name != "group")


@dashboard_access
def events_ndjson(request: HttpRequest) -> HttpResponse:
    """The events the page starts from, under the filter in the query string, oldest first,
    one per line (every process's with a shared backend)."""
    try:
        event_filter = EventFilter.parse(request.GET)
    except FilterError as exc:
        return _bad_request(exc)
    # Read once, now: sends made while the file streams are not in it. As many as the page
    # reads (queries.recent_rows()).
    with suspended():
        events = backend().recent_events(get_config()["HISTORY_SIZE"], event_filter)
    lines = _ndjson_lines(events)
    # Under ASGI a synchronous iterator would be read whole into memory (with a warning)
    # before the first byte is sent.
    content = _aiterate(lines) if isinstance(request, ASGIRequest) else lines
    response = StreamingHttpResponse(content, content_type="application/x-ndjson; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{EVENTS_FILENAME}"'
    return response


def _ndjson_lines(events: list[dict[str, Any]]) -> Iterator[str]:
    for event in events:
        # This runs while the response streams, after the middleware has stopped suspending
        # tracing; the suspension must not span a yield, whose resumption may be in another
        # context.
        with suspended():
            # Payloads are JSON-ready summaries already; default=str keeps an odd value from
            # cutting the download short.
            line = json.dumps(event, default=str)
        yield line + "\n"


async def _aiterate(lines: Iterator[str]) -> AsyncIterator[str]:
    for line in lines:
        yield line


@dashboard_access
def stats_json(request: HttpRequest) -> HttpResponse:
    """Latency statistics by receiver, signal and sender under the filter in the query string."""
    try:
        event_filter = EventFilter.parse(request.GET, ignore=TableQuery.PARAMS)
        query = TableQuery.parse(
            {name: request.GET[name] for name in _STATS_PARAMS if name in request.GET}
        )
    except ValueError as exc:  # FilterError included
        return _bad_request(exc)
    # The recorder replaces its store when the window setting changes: read one store throughout.
    store = backend().latency_store()
    events = list(recorder.events)
    with suspended():
        tables = {
            f"{group}s": [
                row.as_dict()
                for row in store.table(replace(query, group=group), event_filter, events)
            ]
            for group in GROUPS
        }
    data = {
        "generated_at": time.time(),
        "span": "window" if query.window else "all",
        "window_seconds": store.window_seconds,
        "filter": event_filter.to_query(),
        # Path, minimum duration and errors only need single events: such a filter's statistics
        # come from the recent-events buffer, not from the series kept since start.
        "source": "buffer" if event_filter.needs_events else "statistics",
        "overflow": store.overflow,
        # With the Redis transport: other processes' statistics that could not be read.
        "unreadable": len(store.unreadable),
        **tables,
    }
    response = JsonResponse(data)
    response["Content-Disposition"] = f'attachment; filename="{STATS_FILENAME}"'
    return response


def _bad_request(error: ValueError) -> HttpResponse:
    return HttpResponse(str(error), status=400, content_type="text/plain; charset=utf-8")
