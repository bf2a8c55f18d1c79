"""The dashboard's WebSocket, driven with channels' WebsocketCommunicator."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User
from django.dispatch import Signal

from signal_dashboard.backends.redis import relay as relay_module
from signal_dashboard.backends.redis.connection import channel_layer
from signal_dashboard.backends.redis.publisher import Publisher
from signal_dashboard.backends.redis.relay import relay
from signal_dashboard.conf import get_config
from signal_dashboard.integrations.testing.redis_server import RedisServer
from signal_dashboard.record import broadcast
from signal_dashboard.record.broadcast import GROUP, broadcaster
from signal_dashboard.record.filters import EventFilter
from signal_dashboard.record.recorder import recorder
from signal_dashboard.record.stats.table import TableQuery
from signal_dashboard.routing import websocket_application
from signal_dashboard.web import consumers, fragments
from signal_dashboard.web.consumers import (
    MAX_MESSAGE_BYTES,
    MAX_PUSH_BYTES,
    TRANSPORT_DOWN,
    DashboardConsumer,
)
from signal_dashboard.web.rows import row_html
from signal_dashboard.web.tables import tables_html

# channels closes old database connections around each message, which counts as database access.
pytestmark = pytest.mark.django_db

TIMEOUT = 3

pizza_signal = Signal()
order_signal = Signal()


class Pizza:
    pass


class Order:
    pass


def on_pizza(sender: Any, **kwargs: Any) -> str:
    return "baked"


def on_order(sender: Any, **kwargs: Any) -> None:
    raise RuntimeError("no oven")


pizza_signal.connect(on_pizza)
order_signal.connect(on_order)


def staff() -> User:
    return User(username="chef", is_staff=True, is_active=True)


def run(test: Callable[[], Awaitable[None]]) -> None:
    async_to_sync(test)()


async def connect(user: Any, query: str = "") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        DashboardConsumer.as_asgi(), "/ws/signals/" + (f"?{query}" if query else "")
    )
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def next_push(communicator: WebsocketCommunicator, containing: str) -> str:
    """The next message that contains ``containing`` (status-only pushes are skipped)."""
    deadline = time.monotonic() + TIMEOUT
    seen = []
    while time.monotonic() < deadline:
        message = await communicator.receive_from(timeout=TIMEOUT)
        if containing in message:
            return message
        seen.append(message)
    raise AssertionError(f"no message containing {containing!r} within {TIMEOUT}s: {seen[-3:]}")


async def pushes_until(communicator: WebsocketCommunicator, containing: str) -> list[str]:
    """Every message up to the first that contains ``containing``, that one included."""
    pushes = []
    while not pushes or containing not in pushes[-1]:
        pushes.append(await communicator.receive_from(timeout=TIMEOUT))
    return pushes


def senders(html: str) -> list[str]:
    return re.findall(r'data-sender="([^"]+)"', html)


def send_pizza() -> None:
    pizza_signal.send(sender=Pizza, size="large")


def send_order() -> None:
    order_signal.send_robust(sender=Order)


@pytest.mark.parametrize(
    "user",
    [AnonymousUser(), User(username="cook", is_staff=False, is_active=True)],
    ids=["anonymous", "not staff"],
)
def test_socket_closed_with_4403_before_any_event(user: Any) -> None:
    async def test() -> None:
        communicator = await connect(user)
        send_pizza()
        output = await communicator.receive_output(timeout=TIMEOUT)
        assert output == {"type": "websocket.close", "code": 4403}
        assert await communicator.receive_nothing(timeout=0.3)
        assert broadcaster.listeners == 0

    run(test)


def test_access_setting_decides_instead_of_staff(settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {
        **settings.SIGNAL_DASHBOARD,
        "ACCESS": "tests.test_consumers.only_chefs",
    }

    async def test() -> None:
        cook = await connect(User(username="chef", is_staff=False, is_active=True))
        send_pizza()
        assert "data-sender" in await next_push(cook, "data-sender")
        await cook.disconnect()
        admin = await connect(User(username="admin", is_staff=True, is_active=True))
        assert (await admin.receive_output(timeout=TIMEOUT))["code"] == 4403

    run(test)


def only_chefs(user: Any) -> bool:
    return user.username == "chef"


def test_foreign_origin_is_refused() -> None:
    async def test() -> None:
        communicator = WebsocketCommunicator(
            websocket_application, "/ws/signals/", headers=[(b"origin", b"http://evil.example")]
        )
        connected, _ = await communicator.connect()
        assert not connected

    run(test)


def test_staff_sees_sends_live_and_groups_are_empty_after_disconnect() -> None:
    async def test() -> None:
        communicator = await connect(staff())
        send_pizza()
        html = await next_push(communicator, "data-sender")
        assert senders(html) == ["tests.test_consumers.Pizza"]
        assert 'hx-swap-oob="afterbegin"' in html
        assert 'data-signal="tests.test_consumers.pizza_signal"' in html
        assert '<option value="tests.test_consumers.Pizza">' in html  # a new sender
        await communicator.disconnect()
        assert broadcaster.listeners == 0
        assert broadcaster not in recorder.subscribers

    run(test)


def test_filter_from_the_page_url_applies_to_the_stream() -> None:
    async def test() -> None:
        communicator = await connect(staff(), "sender=Order&errors_only=on")
        send_pizza()
        send_order()
        html = await next_push(communicator, "data-sender")
        assert senders(html) == ["tests.test_consumers.Order"]
        assert "RuntimeError: no oven" in html
        await communicator.disconnect()

    run(test)


def test_changing_the_filter_rerenders_from_the_buffer() -> None:
    async def test() -> None:
        send_pizza()
        send_order()
        communicator = await connect(staff())
        await communicator.send_to(
            text_data=json.dumps(
                {"action": "filter", "sender": "Pizza", "HEADERS": {"HX-Request": "true"}}
            )
        )
        html = await next_push(communicator, 'hx-swap-oob="innerHTML"')
        assert senders(html)
        assert set(senders(html)) == {"tests.test_consumers.Pizza"}
        send_order()
        send_pizza()
        live = await next_push(communicator, "data-sender")
        assert set(senders(live)) == {"tests.test_consumers.Pizza"}
        await communicator.disconnect()

    run(test)


def test_pause_holds_events_back_and_resume_shows_them() -> None:
    async def test() -> None:
        communicator = await connect(staff())
        await communicator.send_to(text_data=json.dumps({"action": "pause"}))
        await next_push(communicator, "paused")
        send_pizza()
        send_pizza()
        held = await next_push(communicator, "2 held back")
        assert "data-sender" not in held
        await communicator.send_to(text_data=json.dumps({"action": "resume"}))
        resumed = await next_push(communicator, "data-sender")
        assert senders(resumed) == ["tests.test_consumers.Pizza"] * 2
        await communicator.disconnect()

    run(test)


def test_clear_empties_the_rows_and_refilters_only_newer_events() -> None:
    async def test() -> None:
        send_pizza()
        communicator = await connect(staff())
        await communicator.send_to(text_data=json.dumps({"action": "clear"}))
        cleared = await next_push(communicator, 'hx-swap-oob="innerHTML"')
        assert senders(cleared) == []
        await communicator.send_to(text_data=json.dumps({"action": "filter"}))
        refiltered = await next_push(communicator, 'hx-swap-oob="innerHTML"')
        assert senders(refiltered) == []
        await communicator.disconnect()

    run(test)


class HeldRenders:
    """Counts the stream's re-renders (each reads the recent events once) and holds the first
    one back until ``release()``: messages sent meanwhile queue up behind it, as behind a slow
    one."""

    def __init__(self) -> None:
        self.count = 0
        self.started: list[float] = []
        self._released = threading.Event()
        self._real = consumers.recent_rows

    def recent_rows(self) -> list[dict[str, Any]]:
        self.count += 1
        self.started.append(time.monotonic())
        self._released.wait(TIMEOUT)
        return self._real()

    def release(self) -> None:
        self._released.set()


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldRenders]:
    held = HeldRenders()
    monkeypatch.setattr(consumers, "recent_rows", held.recent_rows)
    try:
        yield held
    finally:
        held.release()


def filter_message(**fields: str) -> str:
    return json.dumps({"action": "filter", **fields, "HEADERS": {"HX-Request": "true"}})


# Sent after other messages, its error says they have all been received.
BARRIER = json.dumps({"action": "barrier"})


@pytest.mark.usefixtures("no_timed_flush")
def test_a_burst_of_filters_renders_only_the_newest(renders: HeldRenders) -> None:
    async def test() -> None:
        send_pizza()
        send_order()
        communicator = await connect(staff())
        for _ in range(999):
            await communicator.send_to(text_data=filter_message(sender="Order"))
        await communicator.send_to(text_data=filter_message(sender="Pizza"))
        await communicator.send_to(text_data=BARRIER)
        await next_push(communicator, "Unknown action")
        renders.release()
        pushes = await pushes_until(communicator, 'id="sd-state"')
        pushes += await pushes_after(communicator)
        await communicator.disconnect()
        # One re-render, of the newest filter: the others came while it waited.
        [replaced] = [push for push in pushes if 'hx-swap-oob="innerHTML"' in push]
        assert renders.count == 1
        assert senders(replaced)
        assert set(senders(replaced)) == {"tests.test_consumers.Pizza"}
        # Typing fast is no error: nothing is said of the filters not rendered.
        assert not [push for push in pushes if "superseded" in push]

    run(test)


def test_filters_are_rerendered_at_most_once_per_interval(
    renders: HeldRenders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "RERENDER_INTERVAL", 0.5)
    renders.release()

    async def test() -> None:
        send_pizza()
        send_order()
        communicator = await connect(staff())
        await communicator.send_to(text_data=filter_message(sender="Order"))
        first = await next_push(communicator, 'hx-swap-oob="innerHTML"')
        await communicator.send_to(text_data=filter_message(sender="Pizza"))
        second = await next_push(communicator, 'hx-swap-oob="innerHTML"')
        await communicator.disconnect()
        assert set(senders(first)) == {"tests.test_consumers.Order"}
        assert set(senders(second)) == {"tests.test_consumers.Pizza"}
        assert renders.count == 2
        assert renders.started[1] - renders.started[0] >= 0.5

    run(test)


@pytest.mark.usefixtures("no_timed_flush")
def test_pause_resume_and_clear_keep_their_place_among_filters(renders: HeldRenders) -> None:
    async def test() -> None:
        send_pizza()
        send_order()
        communicator = await connect(staff())
        # The first filter's re-render is held back while the others arrive.
        for message in (
            filter_message(sender="Pizza"),
            json.dumps({"action": "pause"}),
            json.dumps({"action": "clear"}),
            filter_message(sender="Order"),
            json.dumps({"action": "resume"}),
            BARRIER,
        ):
            await communicator.send_to(text_data=message)
        await next_push(communicator, "Unknown action")
        renders.release()
        pushes = await pushes_until(communicator, 'id="sd-state"')
        pushes += await pushes_after(communicator)
        # Re-rendered once, under the filter sent last and after the clear: nothing yet.
        [replaced] = [push for push in pushes if 'hx-swap-oob="innerHTML"' in push]
        assert senders(replaced) == []
        assert '<span id="sd-held" hidden>' in replaced  # resumed
        assert not [push for push in pushes if "superseded" in push]
        send_pizza()
        send_order()
        await flush()
        assert senders(await next_push(communicator, "data-sender")) == [
            "tests.test_consumers.Order"
        ]
        await communicator.disconnect()

    run(test)


BAD_MESSAGES = {
    "malformed json": ("{not json", "not JSON"),
    "not an object": ("[1, 2]", "expected a JSON object"),
    "unknown action": (json.dumps({"action": "explode"}), "Unknown action 'explode'"),
    "unknown filter field": (
        json.dumps({"action": "filter", "colour": "red"}),
        "Unknown filter field(s): colour",
    ),
    "negative duration": (json.dumps({"action": "filter", "min_duration_ms": -5}), "negative"),
    "huge string": (json.dumps({"action": "filter", "sender": "x" * 5000}), "200"),
    "oversize frame": ("x" * (MAX_MESSAGE_BYTES + 1), "too large"),
}


@pytest.mark.parametrize(("text", "expected"), BAD_MESSAGES.values(), ids=BAD_MESSAGES.keys())
def test_bad_input_gets_an_error_and_the_socket_stays_usable(text: str, expected: str) -> None:
    async def test() -> None:
        communicator = await connect(staff())
        await communicator.send_to(text_data=text)
        error = await next_push(communicator, 'id="sd-error"')
        assert expected in error.replace("&#x27;", "'")
        send_pizza()
        assert senders(await next_push(communicator, "data-sender"))
        await communicator.disconnect()

    run(test)


def test_binary_frame_gets_an_error() -> None:
    async def test() -> None:
        communicator = await connect(staff())
        await communicator.send_to(bytes_data=b"\x00\x01")
        assert "text frames" in await next_push(communicator, 'id="sd-error"')
        await communicator.disconnect()

    run(test)


def test_invalid_filter_in_the_url_shows_an_error_and_streams_unfiltered() -> None:
    async def test() -> None:
        communicator = await connect(staff(), "min_duration_ms=-1")
        assert "negative" in await next_push(communicator, 'id="sd-error"')
        send_pizza()
        assert senders(await next_push(communicator, "data-sender"))
        await communicator.disconnect()

    run(test)


def latency_names(html: str) -> list[str]:
    return re.findall(r'class="sd-lat-row[^"]*" data-name="([^"]+)"', html)


async def table(communicator: WebsocketCommunicator, **fields: str) -> str:
    await communicator.send_to(text_data=json.dumps({"action": "table", **fields}))
    return await next_push(communicator, 'id="sd-latency"')


def test_latency_table_is_pushed_live_and_sorted_on_request(settings: Any) -> None:
    async def test() -> None:
        communicator = await connect(staff(), "signal=test_consumers")
        send_pizza()
        send_order()
        pushed = await next_push(communicator, 'id="sd-latency"')
        assert sorted(latency_names(pushed)) == [
            "tests.test_consumers.on_order",
            "tests.test_consumers.on_pizza",
        ]
        by_name = await table(communicator, sort="name")
        assert latency_names(by_name) == sorted(latency_names(by_name))
        assert "Receiver ▲" in by_name
        again = await table(communicator, sort="name")  # the same column reverses the order
        assert latency_names(again) == sorted(latency_names(by_name), reverse=True)
        by_errors = await table(communicator, sort="errors")
        assert latency_names(by_errors)[0] == "tests.test_consumers.on_order"
        signals = await table(communicator, group="signal", span="all")
        assert set(latency_names(signals)) == {
            "tests.test_consumers.order_signal",
            "tests.test_consumers.pizza_signal",
        }
        assert "since start" in signals
        await communicator.disconnect()

    run(test)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"sort": "p42"}, "sort must be one of name, count"),
        ({"group": "pizza"}, "group must be one of receiver, signal, sender"),
        ({"order": "sideways"}, "order must be asc or desc"),
        ({"colour": "red"}, "Unknown table field(s): colour."),
    ],
)
def test_bad_table_messages_get_an_error(fields: dict[str, str], expected: str) -> None:
    async def test() -> None:
        communicator = await connect(staff())
        await communicator.send_to(text_data=json.dumps({"action": "table", **fields}))
        error = await next_push(communicator, "sd-error")
        assert expected in error
        # The socket still works, with the table as it was.
        assert "p95 ▼" in await table(communicator)
        await communicator.disconnect()

    run(test)


def test_unreachable_redis_transport_closes_the_socket_saying_so(settings: Any) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.SIGNAL_DASHBOARD = {
        **settings.SIGNAL_DASHBOARD,
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
    }

    async def test() -> None:
        communicator = WebsocketCommunicator(DashboardConsumer.as_asgi(), "/ws/signals/")
        communicator.scope["user"] = staff()
        connected, _ = await communicator.connect(timeout=TIMEOUT)
        assert connected
        error = await communicator.receive_from(timeout=TIMEOUT)
        assert "The event transport is down" in error
        closing = await communicator.receive_output(timeout=TIMEOUT)
        assert closing == {"type": "websocket.close", "code": TRANSPORT_DOWN}
        assert broadcaster.listeners == 0

    run(test)


def _redis_transport(settings: Any, url: str) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "REDIS_URL": url}


def _group_members(url: str) -> list[bytes]:
    with redis.Redis.from_url(url) as client:
        return client.zrange(channel_layer()._group_key(GROUP), 0, -1)


@pytest.mark.redis
def test_dashboards_of_one_process_share_one_member_of_the_redis_group(
    settings: Any, redis_server: RedisServer
) -> None:
    _redis_transport(settings, redis_server.url)
    publisher = Publisher(redis_server.url, buffer_size=100)

    async def test() -> None:
        dashboards = [await connect(staff()) for _ in range(3)]
        assert relay.listeners == 3
        assert len(_group_members(redis_server.url)) == 1
        publisher.start()
        try:
            send_pizza()
            for dashboard in dashboards:
                html = await next_push(dashboard, "data-sender")
                assert senders(html) == ["tests.test_consumers.Pizza"]
        finally:
            await asyncio.to_thread(publisher.close)
        await dashboards[0].disconnect()
        assert len(_group_members(redis_server.url)) == 1
        for dashboard in dashboards[1:]:
            await dashboard.disconnect()
        assert relay.listeners == 0
        assert _group_members(redis_server.url) == []

    run(test)


@pytest.mark.redis
def test_the_relay_renews_its_membership_while_dashboards_stay_open(
    settings: Any, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _redis_transport(settings, redis_server.url)
    monkeypatch.setattr(relay_module, "REJOIN_INTERVAL", 0.05)

    def joined_at() -> float:
        with redis.Redis.from_url(redis_server.url) as client:
            [(_, score)] = client.zrange(channel_layer()._group_key(GROUP), 0, -1, withscores=True)
        return score

    async def test() -> None:
        dashboard = await connect(staff())
        first = joined_at()
        deadline = time.monotonic() + TIMEOUT
        while joined_at() == first and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert joined_at() > first
        await dashboard.disconnect()

    run(test)


@pytest.mark.redis
def test_redis_lost_under_open_dashboards_closes_them_saying_so(
    settings: Any, redis_server: RedisServer
) -> None:
    _redis_transport(settings, redis_server.url)

    async def test() -> None:
        dashboards = [await connect(staff()) for _ in range(2)]
        await asyncio.to_thread(redis_server.stop)
        for dashboard in dashboards:
            error = await dashboard.receive_from(timeout=TIMEOUT)
            assert "The event transport is down" in error
            closing = await dashboard.receive_output(timeout=TIMEOUT)
            assert closing == {"type": "websocket.close", "code": TRANSPORT_DOWN}
        assert relay.listeners == 0
        await asyncio.to_thread(redis_server.start)
        again = await connect(staff())  # as the page does when it reconnects
        assert len(_group_members(redis_server.url)) == 1
        await again.disconnect()

    run(test)


def ids(html: str) -> list[str]:
    return re.findall(r'data-id="([^"]+)"', html)


@pytest.fixture(autouse=True)
def fresh_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables and buffered sends another test made are not this test's (tables are kept for
    a while; the buffer holds whatever ran before in this process)."""
    monkeypatch.setattr(fragments, "shared_tables", fragments.SharedTables())
    recorder.clear()


@pytest.fixture
def no_timed_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the test flushes, so it knows what a batch holds."""
    monkeypatch.setattr(broadcast, "FLUSH_INTERVAL", 3600.0)


async def flush() -> None:
    """Hand what was sent so far to the dashboards, as one batch."""
    recorder.drain()
    await broadcaster.flush()


async def pushes_after(communicator: WebsocketCommunicator) -> list[str]:
    """What the socket is sent until it goes quiet."""
    messages = []
    while not await communicator.receive_nothing(timeout=0.2):
        messages.append(await communicator.receive_from())
    return messages


@pytest.mark.usefixtures("no_timed_flush")
def test_five_dashboards_render_each_row_once(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered_ids: list[str] = []

    def counting_row_html(row: Any, event_url: tuple[str, str]) -> str:
        rendered_ids.append(row["id"])
        return row_html(row, event_url)

    monkeypatch.setattr(fragments, "row_html", counting_row_html)

    async def test() -> None:
        dashboards = [await connect(staff()) for _ in range(5)]
        send_pizza()
        send_pizza()
        await flush()
        pushes = [await next_push(dashboard, "data-sender") for dashboard in dashboards]
        for dashboard in dashboards:
            await dashboard.disconnect()
        newest = [event.uid for event in reversed(list(recorder.events)[-2:])]
        assert [ids(push) for push in pushes] == [newest] * 5
        assert sorted(rendered_ids) == sorted(newest)

    run(test)


def sent(count: int, send: Callable[[], Any]) -> list[str]:
    """Send ``count`` times; the sends' ids, newest first."""
    for _ in range(count):
        send()
    return [event.uid for event in reversed(list(recorder.events)[-count:])]


@pytest.mark.usefixtures("no_timed_flush")
def test_a_huge_batch_is_one_message_of_the_newest_max_rows() -> None:
    async def test() -> None:
        communicator = await connect(staff())
        newest = sent(5000, send_pizza)
        await flush()
        html = await next_push(communicator, "data-sender")
        assert ids(html) == newest[:200]  # MAX_ROWS
        assert len(html.encode()) <= MAX_PUSH_BYTES
        assert not any("sd-row" in push for push in await pushes_after(communicator))
        send_pizza()
        await flush()
        assert senders(await next_push(communicator, "data-sender"))  # the socket is open
        await communicator.disconnect()

    run(test)


def on_shout(sender: Any, **kwargs: Any) -> None:
    raise RuntimeError('"' * 8000)  # each quote is six bytes in HTML


shout_signal = Signal()
shout_signal.connect(on_shout)


def send_shout() -> None:
    shout_signal.send_robust(sender=Order)


@pytest.mark.usefixtures("no_timed_flush")
def test_rows_too_big_for_one_message_come_in_several() -> None:
    async def test() -> None:
        communicator = await connect(staff())
        newest = sent(300, send_shout)[: get_config()["MAX_ROWS"]]
        await flush()
        messages = []
        shown: list[str] = []
        while len(shown) < len(newest):
            html = await next_push(communicator, "data-sender")
            messages.append(html)
            shown = ids(html) + shown  # each message's rows go above the earlier ones
        assert shown == newest
        assert len(messages) > 1
        assert all(len(html.encode()) <= MAX_PUSH_BYTES for html in messages)
        send_pizza()
        await flush()
        assert senders(await next_push(communicator, "data-sender")) == [
            "tests.test_consumers.Pizza"
        ]
        await communicator.disconnect()

    run(test)


def test_dashboards_with_the_same_table_share_one_rendering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renders: list[dict[str, Any]] = []

    def recording_tables_html(context: dict[str, Any]) -> str:
        renders.append(context)
        return tables_html(context)

    monkeypatch.setattr(fragments, "tables_html", recording_tables_html)

    async def test() -> None:
        first = await connect(staff(), "signal=test_consumers")
        second = await connect(staff(), "signal=test_consumers")
        send_pizza()
        tables = [await next_push(first, 'id="sd-latency"')]
        tables.append(await next_push(second, 'id="sd-latency"'))
        assert tables[0] == tables[1]
        assert len(renders) == 1
        await table(second, sort="name")  # another query: made for it
        assert len(renders) == 2
        await first.disconnect()
        await second.disconnect()

    run(test)


def test_slow_statistics_do_not_hold_up_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real = fragments.tables_context

    def slow_tables_context(*args: Any) -> dict[str, Any]:
        release.wait(TIMEOUT * 2)  # Redis taking its time
        return real(*args)

    monkeypatch.setattr(fragments, "tables_context", slow_tables_context)
    monkeypatch.setattr(fragments, "shared_tables", fragments.SharedTables())

    async def test() -> None:
        communicator = await connect(staff())
        send_pizza()
        await next_push(communicator, "data-sender")  # and the tables are being made
        send_order()
        assert senders(await next_push(communicator, "data-sender")) == [
            "tests.test_consumers.Order"
        ]
        release.set()
        assert "tests.test_consumers.on_order" in await next_push(communicator, 'id="sd-latency"')
        await communicator.disconnect()

    try:
        run(test)
    finally:
        release.set()


def test_in_one_process_no_channel_layer_is_needed(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {}

    async def test() -> None:
        assert get_channel_layer() is None
        communicator = await connect(staff())
        send_pizza()
        html = await next_push(communicator, "data-sender")
        assert senders(html) == ["tests.test_consumers.Pizza"]
        await communicator.disconnect()

    run(test)


@pytest.mark.parametrize(("share", "makings"), [(0.05, 1), (1e9, 2)])
def test_tables_that_take_long_to_make_are_made_less_often(
    monkeypatch: pytest.MonkeyPatch, share: float, makings: int
) -> None:
    made: list[int] = []

    def slow_make(event_filter: Any, query: Any, previous: Any) -> tuple[Any, str]:
        made.append(1)
        time.sleep(0.1)
        return (len(made), 0), f"<div>{len(made)}</div>"

    monkeypatch.setattr(fragments, "_make_tables", slow_make)
    monkeypatch.setattr(fragments, "TABLES_INTERVAL", 0.0)  # only the share limits them
    monkeypatch.setattr(fragments, "TABLES_SHARE", share)
    tables = fragments.SharedTables()

    async def test() -> None:
        for _ in range(2):
            await tables.get(EventFilter(), TableQuery())

    async_to_sync(test)()
    assert len(made) == makings


def test_an_accepted_filter_comes_back_as_the_pages_state() -> None:
    async def test() -> None:
        communicator = await connect(staff(), "group=signal&span=all")
        await communicator.send_to(text_data=filter_message(sender="Pizza", path="/o/"))
        state = await next_push(communicator, 'id="sd-state"')
        assert 'data-page="?sender=Pizza&amp;path=%2Fo%2F&amp;group=signal&amp;span=all"' in state
        assert 'data-events="?sender=Pizza&amp;path=%2Fo%2F"' in state
        assert 'data-stats="?sender=Pizza&amp;path=%2Fo%2F&amp;span=all"' in state
        assert 'data-active="true"' in state
        await communicator.disconnect()

    run(test)


def test_a_rejected_filter_names_what_stays_in_effect() -> None:
    async def test() -> None:
        communicator = await connect(staff(), "sender=Pizza&sort=count")
        await communicator.send_to(text_data=filter_message(min_duration_ms="-5"))
        error = await next_push(communicator, 'id="sd-error"')
        assert "min_duration_ms cannot be negative. Still in effect: sender=Pizza; " in error
        assert "latency table sort=count" in error
        # No state follows: the page keeps its URL and links.
        send_pizza()
        pushes = await pushes_until(communicator, "data-sender")
        assert not [push for push in pushes if 'id="sd-state"' in push]
        await communicator.disconnect()

    run(test)


def test_hide_adds_to_the_filter_and_hides_live_rows() -> None:
    async def test() -> None:
        communicator = await connect(staff())
        hide = {"action": "hide", "field": "hide_senders", "label": "tests.test_consumers.Pizza"}
        await communicator.send_to(text_data=json.dumps(hide))
        state = await next_push(communicator, 'id="sd-state"')
        assert "hide_senders=tests.test_consumers.Pizza" in state
        assert 'data-label="tests.test_consumers.Pizza"' in state  # the chip to show it again
        send_pizza()
        send_order()
        live = await next_push(communicator, "data-sender")
        assert senders(live) == ["tests.test_consumers.Order"]
        await communicator.send_to(text_data=json.dumps({**hide, "field": "sender"}))
        assert "Only hide_signals" in await next_push(communicator, 'id="sd-error"')
        await communicator.disconnect()

    run(test)


def test_a_batch_never_brings_a_row_the_replacement_showed() -> None:
    async def test() -> None:
        communicator = await connect(staff())
        send_pizza()
        row = list(recorder.events)[-1].as_row()
        await communicator.send_to(text_data=filter_message(sender="Pizza"))
        replaced = await next_push(communicator, 'hx-swap-oob="innerHTML"')
        assert f'data-id="{row["id"]}"' in replaced
        # The broadcaster hands the same row over after the re-render read the buffer.
        batch = {"type": "signal.batch", "rows": [row], "first": 0, "rate": 0.0, "dropped": 0}
        await broadcaster.hand_over(batch)
        send_pizza()
        live = await next_push(communicator, "data-sender")
        assert f'data-id="{row["id"]}"' not in live
        assert senders(live) == ["tests.test_consumers.Pizza"]
        await communicator.disconnect()

    run(test)
