"""Request correlation: every send made while a request is handled names that request.

The request's origin is begun and ended in capture/origins.py, where its request_started and
request_finished sends find it too; here it is made current while the view runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from .capture.context import Origin, current_origin, suspended
from .capture.origins import REQUEST_ID_HEADER, begin_request, close_with, end_request


class SignalDashboardMiddleware:
    """Gives each request an id and a trace context; adds a ``Server-Timing`` entry for the
    time spent in signal receivers."""

    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase]
        | Callable[[HttpRequest], Awaitable[HttpResponseBase]],
    ) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        origin = begin_request(request)
        if origin is None:
            with suspended():
                response = self.get_response(request)
            close_with(response, None)  # type: ignore[arg-type]
            return response
        token = current_origin.set(origin)
        try:
            response = self.get_response(request)
        finally:
            current_origin.reset(token)
        _finish(request, origin, response)  # type: ignore[arg-type]
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        origin = begin_request(request)
        if origin is None:
            with suspended():
                response = await self.get_response(request)  # type: ignore[misc]
            close_with(response, None)
            return response
        token = current_origin.set(origin)
        try:
            response = await self.get_response(request)  # type: ignore[misc]
        finally:
            current_origin.reset(token)
        _finish(request, origin, response)
        return response


def _finish(request: HttpRequest, origin: Origin, response: HttpResponseBase) -> None:
    """End the request's origin, and name it in the response's headers."""
    end_request(request, origin, response)
    if REQUEST_ID_HEADER not in response.headers:
        response.headers[REQUEST_ID_HEADER] = origin.request_id
    timing = f'signals;dur={origin.receiver_ns / 1e6:.3f};desc="{origin.signal_count} signals"'
    existing = response.headers.get("Server-Timing")
    response.headers["Server-Timing"] = f"{existing}, {timing}" if existing else timing
