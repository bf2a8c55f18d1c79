"""Downloads of the buffered events (NDJSON) and the latency statistics (JSON)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from .views import dashboard_access


@dashboard_access
def events_ndjson(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError


@dashboard_access
def stats_json(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError
