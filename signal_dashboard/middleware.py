"""Request correlation: every send made while a request is handled names that request."""

from __future__ import annotations

import functools
import random
import re
import uuid
from collections.abc import Awaitable, Callable
from time import perf_counter_ns
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest, HttpResponseBase
from django.urls import NoReverseMatch, get_urlconf, reverse
from django.utils.functional import empty

from . import conf
from .context import Origin, current_origin, suspended
from .events import receiver_label
from .recorder import recorder

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_CHARS = re.compile(r"[A-Za-z0-9._:-]+")
DASHBOARD_URL_NAME = "signal_dashboard:index"


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
        origin = self._start(request)
        if origin is None:
            with suspended():
                return self.get_response(request)  # type: ignore[return-value]
        token = current_origin.set(origin)
        try:
            response = self.get_response(request)
        finally:
            current_origin.reset(token)
        self._finish(request, origin, response)  # type: ignore[arg-type]
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        origin = self._start(request)
        if origin is None:
            with suspended():
                return await self.get_response(request)  # type: ignore[misc]
        token = current_origin.set(origin)
        try:
            response = await self.get_response(request)  # type: ignore[misc]
        finally:
            current_origin.reset(token)
        self._finish(request, origin, response)
        return response

    def _start(self, request: HttpRequest) -> Origin | None:
        """The request's origin, or None for a request that is not traced (an excluded path,
        or not sampled)."""
        if any(request.path.startswith(prefix) for prefix in excluded_paths()):
            return None
        rate = conf.get_config()["SAMPLE_RATE"]
        if rate < 1 and random.random() >= rate:
            return None  # not sampled: this request's sends are not traced
        request_id = _request_id(request.headers.get(REQUEST_ID_HEADER))
        request.signal_dashboard_request_id = request_id  # type: ignore[attr-defined]
        return Origin(
            kind="request",
            name=f"{request.method} {request.path}",
            request_id=request_id,
            method=request.method,
            path=request.path,
            user_id=_known_user_id(request),
            started_ns=perf_counter_ns(),
        )

    def _finish(self, request: HttpRequest, origin: Origin, response: HttpResponseBase) -> None:
        origin.duration_ns = perf_counter_ns() - origin.started_ns
        origin.status = response.status_code
        if origin.user_id is None:
            origin.user_id = _known_user_id(request)
        recorder.record_request(origin)
        if REQUEST_ID_HEADER not in response.headers:
            response.headers[REQUEST_ID_HEADER] = origin.request_id
        timing = f'signals;dur={origin.receiver_ns / 1e6:.3f};desc="{origin.signal_count} signals"'
        existing = response.headers.get("Server-Timing")
        response.headers["Server-Timing"] = f"{existing}, {timing}" if existing else timing


def request_summary(origin: Origin) -> dict[str, Any]:
    """A finished request (or command) as JSON-ready data."""
    slowest = origin.slowest_receiver_key
    duration = origin.duration_ns
    return {
        **origin.as_dict(),
        "id": origin.id,
        "status": origin.status,
        "error": origin.error,
        "duration_ns": duration,
        "signal_count": origin.signal_count,
        "receiver_ns": origin.receiver_ns,
        # The share of the request spent in receivers of the sends it made.
        "receiver_share": origin.receiver_ns / duration if duration else 0.0,
        "slowest_receiver": None if slowest is None else receiver_label(slowest)[0],
        "slowest_receiver_ns": origin.slowest_receiver_ns,
        "storms": [{"receiver": label, "calls": calls} for label, calls in origin.storms],
    }


def excluded_paths() -> tuple[str, ...]:
    """EXCLUDE_PATHS, or by default the prefix the dashboard's URLs are included under."""
    configured = conf.get_config()["EXCLUDE_PATHS"]
    if configured is not None:
        return tuple(configured)
    return _dashboard_prefix(get_urlconf() or settings.ROOT_URLCONF)


@functools.cache
def _dashboard_prefix(urlconf: object) -> tuple[str, ...]:
    try:
        return (reverse(DASHBOARD_URL_NAME, urlconf=urlconf),)
    except NoReverseMatch:
        return ()


def _request_id(incoming: str | None) -> str:
    """The client's X-Request-ID if it is well formed and bounded, else a fresh one."""
    max_length = conf.get_config()["MAX_REQUEST_ID_LENGTH"]
    if incoming and len(incoming) <= max_length and _REQUEST_ID_CHARS.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def _known_user_id(request: HttpRequest) -> str | None:
    """The user's id if it is already known; never loads the user or the session."""
    user = request.__dict__.get("user")
    wrapped = getattr(user, "_wrapped", empty) if user is not None else empty
    if wrapped is not empty and wrapped is not None:
        pk = getattr(wrapped, "pk", None)
        return None if pk is None else str(pk)
    session = request.__dict__.get("session")
    cache = getattr(session, "_session_cache", None)
    if isinstance(cache, dict) and SESSION_KEY in cache:
        return str(cache[SESSION_KEY])
    return None
