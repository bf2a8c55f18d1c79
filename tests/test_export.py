"""Downloads: the buffered events as NDJSON and the latency statistics as JSON."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.dispatch import Signal
from django.test import AsyncClient, Client

from signal_dashboard.capture.events import SignalEvent
from signal_dashboard.capture.histogram import Histogram
from signal_dashboard.record.filters import EventFilter, FilterError
from signal_dashboard.record.recorder import recorder
from signal_dashboard.record.stats.table import GROUPS, TableQuery

pytestmark = pytest.mark.django_db

EVENTS_URL = "/signals/events.ndjson"
STATS_URL = "/signals/stats.json"
URLS = (EVENTS_URL, STATS_URL)

# Every label of this module's signals, senders and receivers contains this.
MODULE = "tests.test_export"
BAKE = f"{MODULE}.bake"
CHARGE = f"{MODULE}.charge"

pizza_baked = Signal()
order_paid = Signal()
exported = Signal()  # sent from inside the export, to see that it is not traced


class Pizza:
    pass


class Order:
    pass


def bake(sender: Any, **kwargs: Any) -> str:
    return f"baked {kwargs.get('size')}"


def charge(sender: Any, **kwargs: Any) -> None:
    raise RuntimeError("card declined")


def noticed(sender: Any, **kwargs: Any) -> None:
    pass


@pytest.fixture(autouse=True)
def connected() -> Iterator[None]:
    pizza_baked.connect(bake)
    order_paid.connect(charge)
    exported.connect(noticed)
    yield
    pizza_baked.disconnect(bake)
    order_paid.disconnect(charge)
    exported.disconnect(noticed)


@pytest.fixture
def staff_client(client: Client, django_user_model: Any) -> Client:
    client.force_login(django_user_model.objects.create_user(username="chef", is_staff=True))
    return client


@pytest.fixture
def sent(staff_client: Client) -> list[SignalEvent]:
    """This module's sends, alone in the buffer and the statistics (after the login's sends)."""
    recorder.clear()
    pizza_baked.send(sender=Pizza, size="small")
    pizza_baked.send(sender=Pizza, size="large", note="café ☕")
    order_paid.send_robust(sender=Order, total=12)
    pizza_baked.send(sender=Order, size="family")
    events = list(recorder.events)
    assert [event.signal for event in events] == [pizza_baked] * 2 + [order_paid, pizza_baked]
    return events


def as_json(event: SignalEvent) -> dict[str, Any]:
    """An event as it reads back from JSON (tuples become lists and so on)."""
    return json.loads(json.dumps(event.as_dict()))


def ndjson(response: Any) -> list[dict[str, Any]]:
    body = b"".join(response.streaming_content).decode()
    assert body == "" or body.endswith("\n")
    return [json.loads(line) for line in body.splitlines()]


def buffered(event_filter: EventFilter) -> list[dict[str, Any]]:
    return [as_json(event) for event in recorder.events if event_filter.matches(event.as_row())]


# -- events.ndjson ------------------------------------------------------------------------------


def test_events_download_round_trips_the_buffered_events(
    staff_client: Client, sent: list[SignalEvent]
) -> None:
    response = staff_client.get(EVENTS_URL, {"signal": MODULE})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="signal-events.ndjson"'
    lines = ndjson(response)
    assert lines == [as_json(event) for event in sent]
    assert lines[1]["payload"]["note"] == "café ☕"
    assert lines[2]["receivers"][0]["error"]["message"] == "card declined"


def test_unfiltered_download_is_the_whole_buffer_oldest_first(
    staff_client: Client, sent: list[SignalEvent]
) -> None:
    lines = ndjson(staff_client.get(EVENTS_URL))
    # The download's own request (its request_started included) is not traced.
    assert lines == [as_json(event) for event in sent]
    assert lines == buffered(EventFilter())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"sender": "order"}, [2, 3]),
        ({"errors_only": "on"}, [2]),
        ({"receiver": "bake", "sender": "pizza"}, [0, 1]),
        ({"signal": "pizza_baked", "min_duration_ms": "3600000"}, []),
    ],
)
def test_events_download_honours_the_filter(
    staff_client: Client, sent: list[SignalEvent], query: dict[str, str], expected: list[int]
) -> None:
    lines = ndjson(staff_client.get(EVENTS_URL, query))
    assert [line["id"] for line in lines] == [sent[index].uid for index in expected]
    assert lines == buffered(EventFilter.parse(query))


@pytest.mark.parametrize(
    ("query", "expected"),
    [({"signal": MODULE}, [1, 2, 3]), ({"sender": "pizza"}, [1]), ({"errors_only": "on"}, [2])],
)
def test_events_download_lists_what_the_page_lists(
    staff_client: Client,
    sent: list[SignalEvent],
    settings: Any,
    query: dict[str, str],
    expected: list[int],
) -> None:
    # Both read the newest HISTORY_SIZE events: the last three of this module's sends, and
    # the change of the setting.
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "HISTORY_SIZE": 4}
    page = staff_client.get("/signals/", query).content.decode()
    listed = re.findall(r'<tr class="sd-row[^"]*" data-id="([^"]+)"', page)
    lines = ndjson(staff_client.get(EVENTS_URL, query))
    assert [line["id"] for line in lines] == [sent[index].uid for index in expected]
    assert listed == [line["id"] for line in reversed(lines)]


@pytest.mark.parametrize(
    "query",
    [{"pizza": "margherita"}, {"min_duration_ms": "soon"}, {"errors_only": "maybe"}],
)
def test_events_download_rejects_a_bad_filter(staff_client: Client, query: dict[str, str]) -> None:
    with pytest.raises(FilterError) as error:
        EventFilter.parse(query)
    response = staff_client.get(EVENTS_URL, query)
    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == str(error.value)


def test_events_download_is_streamed_asynchronously_under_asgi(
    async_client: AsyncClient, django_user_model: Any
) -> None:
    async_client.force_login(django_user_model.objects.create_user(username="a", is_staff=True))
    recorder.clear()
    pizza_baked.send(sender=Pizza, size="small")
    expected = buffered(EventFilter(signal=MODULE))

    async def download() -> tuple[bool, bytes]:
        response = await async_client.get(EVENTS_URL, {"signal": MODULE})
        return response.is_async, b"".join([part async for part in response.streaming_content])

    is_async, body = async_to_sync(download)()
    assert is_async
    assert [json.loads(line) for line in body.decode().splitlines()] == expected


class Announced:
    """A value JSON cannot hold, whose text is made by sending a signal."""

    def __str__(self) -> str:
        exported.send(sender=Pizza)
        return "announced"


def test_signals_sent_while_making_the_download_are_not_traced(
    staff_client: Client, sent: list[SignalEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    as_dict = SignalEvent.as_dict

    def as_dict_sending_a_signal(event: SignalEvent) -> dict[str, Any]:
        exported.send(sender=Pizza)
        return {**as_dict(event), "odd": Announced()}

    monkeypatch.setattr(SignalEvent, "as_dict", as_dict_sending_a_signal)
    response = staff_client.get(EVENTS_URL, {"signal": MODULE})
    # The view reads the events; their lines, and so the odd value's text, are made here,
    # after the view and the middleware have returned.
    lines = ndjson(response)
    assert [line["odd"] for line in lines] == ["announced"] * len(sent)
    assert [event for event in recorder.events if event.signal is exported] == []
    exported.send(sender=Pizza)  # traced, outside the download
    assert [event for event in recorder.events if event.signal is exported] != []


# -- stats.json ---------------------------------------------------------------------------------


def table(group: str, event_filter: EventFilter, **query: Any) -> list[dict[str, Any]]:
    rows = recorder.latency.table(
        TableQuery(group=group, **query), event_filter, list(recorder.events)
    )
    return json.loads(json.dumps([row.as_dict() for row in rows]))


def test_stats_download_is_the_latency_table_of_every_group(
    staff_client: Client, sent: list[SignalEvent]
) -> None:
    before = time.time()
    response = staff_client.get(STATS_URL, {"signal": MODULE})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="signal-stats.json"'
    data = response.json()
    assert set(data) == {
        "generated_at",
        "span",
        "window_seconds",
        "filter",
        "overflow",
        "unreadable",
        "source",
        "receivers",
        "signals",
        "senders",
    }
    assert before <= data["generated_at"] <= time.time()
    assert data["span"] == "window"
    assert data["window_seconds"] == recorder.latency.window_seconds == 300
    assert data["filter"] == {"signal": MODULE}
    assert data["overflow"] == data["unreadable"] == 0
    for group in GROUPS:
        assert data[f"{group}s"] == table(group, EventFilter(signal=MODULE))
    counts = {row["name"]: (row["count"], row["errors"]) for row in data["receivers"]}
    assert counts == {BAKE: (3, 0), CHARGE: (1, 1)}
    counts = {row["name"]: row["count"] for row in data["senders"]}
    assert counts == {f"{MODULE}.Pizza": 2, f"{MODULE}.Order": 2}
    counts = {row["name"]: row["count"] for row in data["signals"]}
    assert counts == {f"{MODULE}.pizza_baked": 3, f"{MODULE}.order_paid": 1}


def test_stats_histogram_round_trips(staff_client: Client, sent: list[SignalEvent]) -> None:
    data = staff_client.get(STATS_URL, {"receiver": "bake"}).json()
    [row] = data["receivers"]
    expected = Histogram()
    for event in sent:
        for call in event.receivers:
            if call.label == BAKE:
                expected.add(call.duration_ns, error=not call.ok)
    histogram = Histogram.from_dict(row["histogram"])
    assert histogram == expected
    assert histogram.count == row["count"] == 3
    for percent in (50, 95, 99):
        assert histogram.percentile(percent) == row[f"p{percent}_ns"]
    assert (histogram.min_ns, histogram.max_ns) == (row["min_ns"], row["max_ns"])


@pytest.mark.parametrize(
    ("query", "receivers", "signals"),
    [
        ({"sender": "order"}, {BAKE: 1, CHARGE: 1}, {"pizza_baked": 1, "order_paid": 1}),
        ({"errors_only": "on"}, {CHARGE: 1}, {"order_paid": 1}),
        ({"receiver": "charge"}, {CHARGE: 1}, {"order_paid": 1}),
        ({"signal": "pizza_baked", "sender": "pizza"}, {BAKE: 2}, {"pizza_baked": 2}),
    ],
)
def test_stats_download_honours_the_filter(
    staff_client: Client,
    sent: list[SignalEvent],
    query: dict[str, str],
    receivers: dict[str, int],
    signals: dict[str, int],
) -> None:
    data = staff_client.get(STATS_URL, query).json()
    assert data["filter"] == EventFilter.parse(query).to_query()
    assert data["source"] == ("buffer" if EventFilter.parse(query).needs_events else "statistics")
    assert {row["name"]: row["count"] for row in data["receivers"]} == receivers
    assert {
        row["name"].removeprefix(f"{MODULE}."): row["count"] for row in data["signals"]
    } == signals
    for group in GROUPS:
        assert data[f"{group}s"] == table(group, EventFilter.parse(query))


@pytest.mark.parametrize(
    ("query", "sort", "descending"),
    [
        ({}, "p95", True),
        ({"sort": "count"}, "count", True),
        ({"sort": "count", "order": "asc"}, "count", False),
        ({"sort": "name"}, "name", False),
    ],
)
def test_stats_download_is_sorted_as_asked(
    staff_client: Client,
    sent: list[SignalEvent],
    query: dict[str, str],
    sort: str,
    descending: bool,
) -> None:
    data = staff_client.get(STATS_URL, {"signal": MODULE, **query}).json()
    for group in GROUPS:
        expected = table(group, EventFilter(signal=MODULE), sort=sort, descending=descending)
        assert [row["name"] for row in data[f"{group}s"]] == [row["name"] for row in expected]
    if sort == "count":
        names = [row["name"] for row in data["receivers"]]
        assert names == ([BAKE, CHARGE] if descending else [CHARGE, BAKE])


@pytest.mark.parametrize("group", ["signal", "pizza"])
def test_stats_group_parameter_is_ignored(
    staff_client: Client, sent: list[SignalEvent], group: str
) -> None:
    plain = staff_client.get(STATS_URL, {"signal": MODULE}).json()
    grouped = staff_client.get(STATS_URL, {"signal": MODULE, "group": group}).json()
    for group in GROUPS:
        assert grouped[f"{group}s"] == plain[f"{group}s"]


def test_stats_span_selects_the_window_or_since_start(
    staff_client: Client, sent: list[SignalEvent]
) -> None:
    store = recorder.latency
    # Move every recorded slice back by more than the window.
    for series in [*store.calls.values(), *store.sends.values()]:
        series.slices = type(series.slices)(
            (slice_id - store.slices - 1, histogram) for slice_id, histogram in series.slices
        )
    window = staff_client.get(STATS_URL, {"signal": MODULE}).json()
    assert window["span"] == "window"
    assert (window["receivers"], window["signals"], window["senders"]) == ([], [], [])
    since_start = staff_client.get(STATS_URL, {"signal": MODULE, "span": "all"}).json()
    assert since_start["span"] == "all"
    counts = {row["name"]: row["count"] for row in since_start["receivers"]}
    assert counts == {BAKE: 3, CHARGE: 1}
    for group in GROUPS:
        assert since_start[f"{group}s"] == table(group, EventFilter(signal=MODULE), window=False)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"sort": "p42"}, "sort must be one of name, count, errors, mean, p50, p95, p99, max, "),
        ({"order": "up"}, "order must be asc or desc; got 'up'."),
        ({"span": "week"}, "span must be window or all; got 'week'."),
        ({"pizza": "margherita"}, "Unknown filter field(s): pizza. Known: "),
        ({"min_duration_ms": "-1"}, "min_duration_ms cannot be negative."),
    ],
)
def test_stats_download_rejects_bad_parameters(
    staff_client: Client, query: dict[str, str], message: str
) -> None:
    response = staff_client.get(STATS_URL, query)
    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode().startswith(message)


# -- Access -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", URLS)
def test_anonymous_users_are_sent_to_log_in(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{settings.LOGIN_URL}?next={quote(url)}"


@pytest.mark.parametrize("url", URLS)
def test_signed_in_users_who_are_not_staff_are_refused(
    client: Client, django_user_model: Any, url: str
) -> None:
    client.force_login(django_user_model.objects.create_user(username="guest"))
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", URLS)
def test_staff_users_may_download(staff_client: Client, url: str) -> None:
    assert staff_client.get(url).status_code == 200
