"""Origins begun and ended: requests (from their request_started send and the middleware),
management commands and the tests of Django's runner; and a finished origin as data, as any
process shows it.

A request's origin is made as its request_started is sent, from the environ or scope the
request is then built around, and taken up by the middleware (``begin_request()``); the
response's close() names it to the request_finished send that ends it. A command's is made by
the patched ``BaseCommand.execute``.
"""

from __future__ import annotations

import contextlib
import functools
import random
import re
import threading
import unittest
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from time import perf_counter_ns
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.core.handlers.wsgi import get_path_info, get_script_name
from django.core.management.base import BaseCommand
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse
from django.utils.functional import empty

from .. import conf
from . import tasks
from .context import Origin, current_origin
from .events import WALL_OFFSET_NS
from .failures import Failures
from .labels import receiver_label
from .outbox import outbox

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_CHARS = re.compile(r"[A-Za-z0-9._:-]+")
DASHBOARD_URL_NAME = "signal_dashboard:index"
FAVICON_PATH = "/favicon.ico"


# --- Requests -------------------------------------------------------------------------------


def begin_request(request: HttpRequest) -> Origin | None:
    """The request's origin, or None for a request that is not traced (an excluded path, or
    not sampled): the one made as ``request_started`` was sent, if it was."""
    key = getattr(request, "scope", None) or getattr(request, "environ", None)
    started = _started.pop(id(key), None)
    if started is not None and started[0] is key:
        origin = started[1]
        if origin is None:
            return None
        origin.user_id = _known_user_id(request)
    else:
        origin = _new_origin(request.method, request.path, request.headers.get(REQUEST_ID_HEADER))
        if origin is None:
            return None
    request.signal_dashboard_request_id = origin.request_id  # type: ignore[attr-defined]
    return origin


def end_request(request: HttpRequest, origin: Origin, response: HttpResponseBase) -> None:
    """The view returned ``response``: the request's origin is finished (its sends while the
    response streams and its request_finished still name it)."""
    close_with(response, origin)
    if isinstance(response, StreamingHttpResponse):
        # Streamed after this returns: the sends made while streaming are the request's.
        content = response.streaming_content
        if response.is_async:
            response.streaming_content = _astream_as(origin, content)  # type: ignore[arg-type]
        else:
            response.streaming_content = _stream_as(origin, content)  # type: ignore[arg-type]
    origin.duration_ns = perf_counter_ns() - origin.started_ns
    origin.status = response.status_code
    if origin.user_id is None:
        origin.user_id = _known_user_id(request)
    outbox.put(origin)


# --- request_started and request_finished -------------------------------------------------
# Django sends request_started before the request object exists and the middleware runs, and
# request_finished when the server closes the response, after the middleware returned. Both are
# attributed to their request: the origin is made as request_started is sent (from its environ
# or scope, which the request is then built around) and taken up here; the response's close()
# names it to the request_finished send that ends it.

# Origins made by request_started sends, by id() of their environ or scope (kept beside, so that
# a recycled id is told apart), until the middleware takes them; None: not traced.
_started: OrderedDict[int, tuple[Mapping[str, Any], Origin | None]] = OrderedDict()
# Requests whose middleware never ran (no SignalDashboardMiddleware, or a request Django turned
# down before it) leave their entry: only the latest are kept.
MAX_STARTED = 64
_MIDDLEWARE_PATH = "signal_dashboard.middleware.SignalDashboardMiddleware"


class _Closing(threading.local):
    """The request whose response is being closed on this thread, for its request_finished."""

    origin: Origin | object | None = None  # None: no request; NOT_TRACED: a request not traced


_closing = _Closing()
NOT_TRACED = object()


def started_origin(named: Mapping[str, Any], current: Origin) -> Origin | None:
    """The origin of a request_started send (``current`` if none can be made), or None if the
    request is not traced."""
    if _MIDDLEWARE_PATH not in settings.MIDDLEWARE:
        return current
    environ, scope = named.get("environ"), named.get("scope")
    if isinstance(environ, dict):
        method = environ.get("REQUEST_METHOD", "GET").upper()
        script_name, path_info = get_script_name(environ), get_path_info(environ)
        path = "{}/{}".format(script_name.rstrip("/"), path_info.replace("/", "", 1))
        incoming = environ.get("HTTP_X_REQUEST_ID")
        key: Mapping[str, Any] = environ
    elif isinstance(scope, dict) and scope.get("type") == "http":
        method = str(scope.get("method", "GET")).upper()
        path = str(scope.get("path", ""))
        incoming = _header(scope, b"x-request-id")
        key = scope
    else:
        return current
    origin = _new_origin(method, path, incoming)
    _started[id(key)] = (key, origin)
    while len(_started) > MAX_STARTED:
        _started.popitem(last=False)
    return origin


def finished_origin(current: Origin) -> Origin | None:
    """The origin of a request_finished send (``current`` if no response of a request is being
    closed here), or None if the request is not traced."""
    origin = _closing.origin
    if origin is None:
        return current
    _closing.origin = None
    return None if origin is NOT_TRACED else origin  # type: ignore[return-value]


def close_with(response: HttpResponseBase, origin: Origin | None) -> None:
    """Name the request to the request_finished send of this response's close()."""
    closers = getattr(response, "_resource_closers", None)
    if isinstance(closers, list):
        value = NOT_TRACED if origin is None else origin
        closers.append(functools.partial(setattr, _closing, "origin", value))


def _stream_as(origin: Origin, content: Iterator[bytes]) -> Iterator[bytes]:
    while True:
        token = current_origin.set(origin)
        try:
            chunk = next(content)
        except StopIteration:
            return
        finally:
            current_origin.reset(token)
        yield chunk


async def _astream_as(origin: Origin, content: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    while True:
        token = current_origin.set(origin)
        try:
            chunk = await anext(content)
        except StopAsyncIteration:
            return
        finally:
            current_origin.reset(token)
        yield chunk


def _new_origin(method: str | None, path: str, incoming_id: str | None) -> Origin | None:
    """A request's origin, or None for a request that is not traced (an excluded path, or not
    sampled)."""
    if path.startswith(excluded_paths()):
        return None
    rate = conf.get_config()["SAMPLE_RATE"]
    if rate < 1 and random.random() >= rate:
        return None  # not sampled: this request's sends are not traced
    return Origin(
        kind="request",
        name=f"{method} {path}",
        request_id=_request_id(incoming_id),
        method=method,
        path=path,
        started_ns=perf_counter_ns(),
    )


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            try:
                return bytes(value).decode("latin-1")
            except (TypeError, ValueError):
                return None
    return None


def excluded_paths() -> tuple[str, ...]:
    """The request path prefixes that are never traced: EXCLUDE_PATHS, or by default the prefix
    the dashboard's URLs are included under, STATIC_URL, MEDIA_URL and /favicon.ico."""
    configured = _configured_paths()
    if configured is not None:
        return configured
    return _default_paths(get_urlconf() or settings.ROOT_URLCONF)


@conf.derived
def _configured_paths(config: dict[str, Any]) -> tuple[str, ...] | None:
    paths = config["EXCLUDE_PATHS"]
    return None if paths is None else tuple(paths)


@functools.cache
def _default_paths(urlconf: object) -> tuple[str, ...]:
    try:
        dashboard = reverse(DASHBOARD_URL_NAME, urlconf=urlconf)
    except NoReverseMatch:
        dashboard = None
    paths = (dashboard, _served_here(settings.STATIC_URL), _served_here(settings.MEDIA_URL))
    return (*(path for path in paths if path), FAVICON_PATH)


@conf.on_change
def _forget_default_paths(config: dict[str, Any]) -> None:
    _default_paths.cache_clear()  # STATIC_URL or MEDIA_URL may have changed


def _served_here(url: str | None) -> str | None:
    """The path of STATIC_URL or MEDIA_URL if this site serves its files, else None: unset, an
    absolute URL (another host serves them), or the site's root (Django makes an unset
    MEDIA_URL the script prefix, and excluding it would exclude every request)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or parts.path in ("", "/", get_script_prefix()):
        return None
    return parts.path


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


# --- Management commands ----------------------------------------------------------------------


def make_execute() -> Callable[..., Any]:
    original = BaseCommand.execute

    def execute(self: BaseCommand, *args: Any, **options: Any) -> Any:
        if current_origin.get().kind == "request":
            return original(self, *args, **options)
        name = type(self).__module__.rpartition(".")[2]
        origin = Origin(kind="command", name=name, started_ns=perf_counter_ns())
        token = current_origin.set(origin)
        try:
            return original(self, *args, **options)
        except BaseException as err:
            try:
                message = str(err)[:200]
            except Exception:  # str() of an exception is user code
                message = ""
            origin.error = f"{type(err).__qualname__}: {message}"
            raise
        finally:
            current_origin.reset(token)
            origin.duration_ns = perf_counter_ns() - origin.started_ns
            try:
                outbox.put(origin)
            except Exception:
                Failures.add()

    return functools.wraps(original)(execute)


# --- Tests under Django's runner --------------------------------------------------------------
# Each test a runner runs (Django's DiscoverRunner, or unittest's) is an origin of its own, from
# its result's startTest() to its stopTest(), which TestCase.run() calls around the test in one
# frame: query thresholds and run-time connects count within one test, as pytest --signals
# charges each test its own. (pytest runs unittest tests with a result of its own, and charges
# them itself.) Set-up wider than one test (setUpClass, fixtures) stays the command's.


# The tests whose origin is current on this thread: (test, its origin, the token to reset).
class _RunningTests(threading.local):
    def __init__(self) -> None:
        self.stack: list[tuple[Any, Origin, Any]] = []


_running_tests = _RunningTests()
MAX_TEST_NAME = 200


def make_start_test() -> Callable[..., Any]:
    original = unittest.TestResult.startTest

    def startTest(self: unittest.TestResult, test: Any) -> None:
        original(self, test)
        try:
            if current_origin.get().kind not in ("command", "process"):
                return
            origin = Origin(kind="test", name=_test_name(test), started_ns=perf_counter_ns())
            _running_tests.stack.append((test, origin, current_origin.set(origin)))
        except Exception:
            Failures.add()

    return functools.wraps(original)(startTest)


def make_stop_test() -> Callable[..., Any]:
    original = unittest.TestResult.stopTest

    def stopTest(self: unittest.TestResult, test: Any) -> None:
        try:
            stack = _running_tests.stack
            if stack and stack[-1][0] is test:
                _, origin, token = stack.pop()
                # (Set in another context, it leaves nothing of ours to restore.)
                with contextlib.suppress(ValueError):
                    current_origin.reset(token)
                origin.duration_ns = perf_counter_ns() - origin.started_ns
                outbox.put(origin)
        except Exception:
            Failures.add()
        original(self, test)

    return functools.wraps(original)(stopTest)


def _test_name(test: Any) -> str:
    try:
        name = test.id()
    except Exception:  # a test's id() is user code
        name = type(test).__qualname__
    return str(name)[:MAX_TEST_NAME]


# --- A finished origin as data --------------------------------------------------------------


def origin_data(origin: Origin) -> dict[str, Any]:
    """A finished request, command or task run as JSON-ready data, as any process shows it
    (what the Redis transport publishes: see ``request_summary()`` for this process's)."""
    slowest = origin.slowest_receiver_key
    duration = origin.duration_ns
    task_status = origin.task_status
    enqueuer = origin.enqueued_by or tasks.enqueuer_of(origin.task_id)
    return {
        **origin.as_dict(),
        "id": origin.id,
        "finished_at": (origin.started_ns + (duration or 0) + WALL_OFFSET_NS) / 1e9,
        "status": origin.status,
        "error": origin.error,
        "task_status": task_status,
        "enqueued_by": None if enqueuer is None else enqueuer["label"],
        "enqueuer": enqueuer,
        "enqueued": list(origin.enqueued),
        "enqueued_more": origin.enqueued_more,
        "duration_ns": duration,
        "signal_count": origin.signal_count,
        "receiver_ns": origin.receiver_ns,
        # The share of the request spent in receivers of the sends it made.
        "receiver_share": origin.receiver_ns / duration if duration else 0.0,
        # Every query it ran, and those its receivers ran (nested sends' included).
        "query_count": origin.query_count,
        "query_ns": origin.query_ns,
        "receiver_query_count": origin.receiver_query_count,
        "receiver_query_ns": origin.receiver_query_ns,
        "slowest_receiver": None if slowest is None else receiver_label(slowest)[0],
        "slowest_receiver_ns": origin.slowest_receiver_ns,
        "storms": [{"receiver": label, "calls": calls} for label, calls in origin.storms],
        "failed": bool(origin.error)
        or task_status == "FAILED"
        or (origin.status is not None and origin.status >= 500),
        "receivers": sorted({receiver_label(key)[0] for key in origin.receiver_call_counts()}),
    }
