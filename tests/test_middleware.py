"""Request correlation: request ids, origins, request summaries and Server-Timing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.db.models.signals import post_save
from django.test import AsyncClient

from signal_dashboard.capture.origins import excluded_paths
from signal_dashboard.demo.pizzeria.models import Topping
from signal_dashboard.record.recorder import recorder
from signal_dashboard.tracing import capture
from signal_dashboard.web.reading import request_summary

pytestmark = pytest.mark.django_db


def topping_saved(sender: Any, **kwargs: Any) -> None:
    sum(range(10_000))


@pytest.fixture(autouse=True)
def _listen_to_topping_saves() -> Iterator[None]:
    post_save.connect(topping_saved, sender=Topping)
    yield
    post_save.disconnect(topping_saved, sender=Topping)


def saves(events: Any) -> list[Any]:
    return events.filter(signal=post_save, sender=Topping)


def test_events_carry_the_request(client: Any) -> None:
    with capture() as events:
        response = client.get("/toppings/save/?name=basil")
    [event] = saves(events)
    origin = event.origin
    assert origin.kind == "request"
    assert (origin.method, origin.path) == ("GET", "/toppings/save/")
    assert origin.request_id == response.headers["X-Request-ID"]
    assert len(origin.request_id) == 32
    assert event.as_dict()["origin"]["request_id"] == origin.request_id


def test_well_formed_incoming_request_id_is_kept(client: Any) -> None:
    with capture() as events:
        client.get("/toppings/save/", HTTP_X_REQUEST_ID="lb-7f3a.42")
    assert saves(events)[0].origin.request_id == "lb-7f3a.42"


@pytest.mark.parametrize("bad", ["a" * 65, "spaces are bad", "<script>", ""])
def test_malformed_incoming_request_id_is_replaced(client: Any, bad: str) -> None:
    with capture() as events:
        client.get("/toppings/save/", HTTP_X_REQUEST_ID=bad)
    request_id = saves(events)[0].origin.request_id
    assert request_id != bad
    assert len(request_id) == 32


def test_user_id_of_a_logged_in_user(client: Any) -> None:
    user = get_user_model().objects.create_user("chef", password="pw")
    client.force_login(user)
    with capture() as events:
        client.get("/toppings/save/?members_only=1")
    assert saves(events)[0].origin.user_id == str(user.pk)


def test_user_is_never_loaded_by_tracing(client: Any, django_assert_num_queries: Any) -> None:
    user = get_user_model().objects.create_user("chef", password="pw")
    client.force_login(user)
    with capture() as events, django_assert_num_queries(1):  # the view's insert, nothing else
        client.get("/toppings/save/")
    assert saves(events)[0].origin.user_id is None


def test_request_summary_and_server_timing(client: Any) -> None:
    with capture() as events:
        response = client.get("/toppings/save/")
    origin = recorder.requests[-1]
    summary = request_summary(origin)
    assert summary["status"] == 200
    assert summary["path"] == "/toppings/save/"
    assert summary["signal_count"] >= 1
    assert summary["receiver_ns"] > 0
    # request_finished is sent as the response is closed, after the request's duration ends:
    # the receivers of the sends before it ran within it.
    within = [e for e in events if e.parent is None and e.signal is not request_finished]
    assert summary["duration_ns"] >= sum(
        call.duration_ns for event in within for call in event.receivers
    )
    assert summary["slowest_receiver"] == "tests.test_middleware.topping_saved"
    timing = response.headers["Server-Timing"]
    assert timing.startswith("signals;dur=")
    # The header left before the response was closed, which sends request_finished.
    assert f'desc="{summary["signal_count"] - 1} signals"' in timing


def test_async_view_events_carry_the_request() -> None:
    client = AsyncClient()
    with capture() as events:
        response = async_to_sync(client.get)(
            "/toppings/async-save/", headers={"X-Request-ID": "async-1"}
        )
    assert response.status_code == 200
    [event] = saves(events)
    assert event.origin.request_id == "async-1"
    assert event.origin.path == "/toppings/async-save/"


def test_dashboard_urls_are_not_traced(admin_client: Any) -> None:
    with capture() as events:
        response = admin_client.get("/signals/")
    assert response.status_code == 200
    assert all(event.origin.path != "/signals/" for event in events)
    assert "X-Request-ID" not in response.headers


def test_exclude_paths_setting(client: Any, settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "EXCLUDE_PATHS": ["/toppings/"]}
    with capture() as events:
        client.get("/toppings/save/")
    assert saves(events) == []


@pytest.mark.parametrize(("rate", "traced"), [(0, False), (1, True), (1.0, True)])
def test_sample_rate_decides_whether_a_request_is_traced(
    client: Any, settings: Any, rate: float, traced: bool
) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "SAMPLE_RATE": rate}
    with capture() as events:
        response = client.get("/toppings/save/?name=sampled")
    assert response.status_code == 200
    assert bool(saves(events)) is traced
    assert ("X-Request-ID" in response.headers) is traced


def test_half_of_the_requests_are_sampled(client: Any, settings: Any, monkeypatch: Any) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "SAMPLE_RATE": 0.5}
    draws = iter([0.1, 0.7, 0.49, 0.5])
    monkeypatch.setattr("signal_dashboard.capture.origins.random.random", lambda: next(draws))
    with capture() as events:
        for index in range(4):
            client.get(f"/toppings/save/?name=s{index}")
    assert [event.origin.path for event in saves(events)] == ["/toppings/save/"] * 2


# --- request_started and request_finished ---------------------------------------------------


def boundaries(events: Any) -> tuple[Any, Any]:
    [started] = events.filter(signal=request_started)
    [finished] = events.filter(signal=request_finished)
    return started, finished


def assert_one_request(events: Any, request_id: str, path: str) -> None:
    """request_started, the view's save and request_finished all name the same request."""
    started, finished = boundaries(events)
    [save] = saves(events)
    assert started.origin is save.origin is finished.origin
    origin = started.origin
    assert (origin.kind, origin.method, origin.path) == ("request", "GET", path)
    assert origin.request_id == request_id
    assert started.as_row()["origin"]["request_id"] == request_id
    assert origin in recorder.requests


@pytest.mark.parametrize("path", ["/toppings/save/", "/toppings/async-save/"])
def test_request_boundaries_belong_to_their_request_under_the_test_client(
    client: Any, path: str
) -> None:
    with capture() as events:
        response = client.get(path)
    assert_one_request(events, response.headers["X-Request-ID"], path)


@pytest.mark.parametrize("path", ["/toppings/save/", "/toppings/async-save/"])
def test_request_boundaries_belong_to_their_request_under_the_async_client(path: str) -> None:
    with capture() as events:
        response = async_to_sync(AsyncClient().get)(path, headers={"X-Request-ID": "async-7"})
    assert response.status_code == 200
    assert_one_request(events, "async-7", path)


def test_a_streamed_response_and_its_sends_belong_to_their_request(client: Any) -> None:
    with capture() as events:
        response = client.get("/toppings/stream/")
        assert events.filter(signal=request_finished) == []
        body = b"".join(response.streaming_content)
    assert body.startswith(b"saving saved ")
    assert_one_request(events, response.headers["X-Request-ID"], "/toppings/stream/")


def test_an_async_streamed_response_and_its_sends_belong_to_their_request() -> None:
    async def get() -> bytes:
        response = await AsyncClient().get(
            "/toppings/async-stream/", headers={"X-Request-ID": "as-1"}
        )
        return b"".join([chunk async for chunk in response.streaming_content])

    with capture() as events:
        body = async_to_sync(get)()
    assert body.startswith(b"saving saved ")
    assert_one_request(events, "as-1", "/toppings/async-stream/")


@pytest.fixture
def _database_kept_open() -> Iterator[None]:
    """As the test client does: Django's handlers would close the test's database connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.usefixtures("_database_kept_open")
def test_request_boundaries_under_djangos_wsgi_handler() -> None:
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update(PATH_INFO="/toppings/save/", HTTP_HOST="localhost", HTTP_X_REQUEST_ID="w-1")
    statuses: list[str] = []
    with capture() as events:
        result = WSGIHandler()(environ, lambda status, headers: statuses.append(status))
        body = b"".join(result)
        result.close()  # as a WSGI server does once the response is sent
    assert (statuses, body.startswith(b"saved ")) == (["200 OK"], True)
    assert_one_request(events, "w-1", "/toppings/save/")


@pytest.mark.usefixtures("_database_kept_open")
def test_request_boundaries_under_djangos_asgi_handler() -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/toppings/async-save/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost"), (b"x-request-id", b"a-1")],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
    }
    sent: list[dict[str, Any]] = []

    async def serve() -> None:
        messages = [{"type": "http.request", "body": b"", "more_body": False}]
        done = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await ASGIHandler()(scope, receive, send)
        done.set()

    with capture() as events:
        async_to_sync(serve)()
    assert sent[0]["status"] == 200
    assert_one_request(events, "a-1", "/toppings/async-save/")


def test_the_dashboards_own_requests_leave_no_events(admin_client: Any) -> None:
    with capture() as events:
        assert admin_client.get("/signals/").status_code == 200
    assert events == []


def test_requests_not_sampled_leave_no_boundary_events(client: Any, settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "SAMPLE_RATE": 0}
    with capture() as events:
        client.get("/toppings/save/")
    assert events == []


def test_without_the_middleware_request_boundaries_belong_to_the_process(
    client: Any, settings: Any
) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "signal_dashboard" not in m]
    with capture() as events:
        client.get("/toppings/save/")
    started, finished = boundaries(events)
    assert started.origin.kind == finished.origin.kind == "process"


# --- Paths not traced by default --------------------------------------------------------------

NOISE = ["/static/signal_dashboard/dashboard.css", "/media/menus/spring.pdf", "/favicon.ico"]


@pytest.mark.parametrize("path", NOISE)
def test_static_media_and_favicon_requests_are_not_traced_by_default(
    client: Any, settings: Any, path: str
) -> None:
    settings.MEDIA_URL = "/media/"
    with capture() as events:
        client.get(path)
    assert events == []
    assert path not in [origin.path for origin in recorder.requests]

    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "EXCLUDE_PATHS": []}
    with capture() as events:
        client.get(path)
    started, finished = boundaries(events)
    assert started.origin is finished.origin
    assert started.origin.path == path
    assert recorder.requests[-1] is started.origin


def test_default_excluded_paths_follow_the_settings(settings: Any) -> None:
    # MEDIA_URL is unset: Django makes it "/", which is every request, not media.
    assert excluded_paths() == ("/signals/", "/static/", "/favicon.ico")
    settings.STATIC_URL = "https://cdn.example.com/static/"  # served elsewhere
    settings.MEDIA_URL = "uploads/"  # relative: under the script prefix
    assert excluded_paths() == ("/signals/", "/uploads/", "/favicon.ico")
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "EXCLUDE_PATHS": ["/health/"]}
    assert excluded_paths() == ("/health/",)
