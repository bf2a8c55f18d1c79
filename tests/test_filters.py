"""EventFilter: parsing user input strictly, matching event rows, and back to a query string."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any
from urllib.parse import urlencode

import pytest
from django.http import QueryDict

from signal_dashboard.record.filters import EventFilter, FilterError

KNOWN = (
    "Known: sender, signal, receiver, path, process, task, kind, min_duration_ms, errors_only, "
    "hide_signals, hide_senders, hide_receivers."
)
HTMX_ENVELOPE = frozenset({"HEADERS", "action"})


def make_row(**changes: Any) -> dict[str, Any]:
    """An event row as SignalEvent.as_row() makes it."""
    row: dict[str, Any] = {
        "id": "host:pid:17",
        "timestamp": 1763790000.123,
        "signal": "django.db.models.signals.post_save",
        "sender": "pizzeria.Pizza",
        "method": "send",
        "duration_ns": 1_234_567,
        "receiver_count": 2,
        "receivers": ["myapp.receivers.on_save", "other.mod.Class.method"],
        "slowest_receiver": "myapp.receivers.on_save",
        "slowest_receiver_ns": 1_000_000,
        "ok": True,
        "error": None,
        "origin": {
            "kind": "request",
            "name": "GET /pizzas/",
            "request_id": "abc",
            "method": "GET",
            "path": "/pizzas/",
            "user_id": "3",
            "pid": 123,
            "host": "vm",
        },
        "depth": 0,
        "parent_id": None,
    }
    row.update(changes)
    return row


COMMAND_ORIGIN = {"kind": "command", "name": "migrate", "pid": 123, "host": "vm"}


def test_fields_are_the_dataclass_fields_in_order() -> None:
    init_fields = tuple(f.name for f in dataclasses.fields(EventFilter) if f.init)
    assert init_fields == EventFilter.FIELDS
    assert EventFilter.FIELDS == (
        "sender",
        "signal",
        "receiver",
        "path",
        "process",
        "task",
        "kind",
        "min_duration_ms",
        "errors_only",
        "hide_signals",
        "hide_senders",
        "hide_receivers",
    )


def test_process_matches_host_and_pid() -> None:
    row = make_row(origin=COMMAND_ORIGIN)
    assert EventFilter(process="vm:123").matches(row)
    assert EventFilter(process="VM:").matches(row)
    assert not EventFilter(process="vm:124").matches(row)
    assert EventFilter(process="vm:123").needs_events


def test_default_filter_matches_every_row() -> None:
    event_filter = EventFilter()
    assert event_filter.matches(make_row())
    assert event_filter.matches(make_row(ok=False, receivers=[], origin=COMMAND_ORIGIN))


@pytest.mark.parametrize(
    ("event_filter", "row"),
    [
        (EventFilter(sender="pizza"), make_row()),
        (EventFilter(sender="PIZZERIA.P"), make_row()),
        (EventFilter(signal="POST_SAVE"), make_row()),
        (EventFilter(signal="db.models"), make_row()),
        (EventFilter(receiver="ON_SAVE"), make_row()),
        (EventFilter(receiver="class.METHOD"), make_row()),
        (EventFilter(path="/pizzas"), make_row()),
        (EventFilter(path="/pizzas/"), make_row()),
        (EventFilter(min_duration_ms=1.0), make_row()),
        (EventFilter(min_duration_ms=1.234567), make_row()),  # exactly at the threshold
        # 2.007 * 1e6 is 2007000.0000000002 in floating point.
        (EventFilter(min_duration_ms=2.007), make_row(duration_ns=2_007_000)),
        (EventFilter(min_duration_ms=0.0), make_row(duration_ns=0)),
        (EventFilter(errors_only=True), make_row(ok=False, error="builtins.RuntimeError: x")),
    ],
)
def test_matches(event_filter: EventFilter, row: dict[str, Any]) -> None:
    assert event_filter.matches(row)


@pytest.mark.parametrize(
    ("event_filter", "row"),
    [
        (EventFilter(sender="topping"), make_row()),
        (EventFilter(sender="pizza"), make_row(sender="pizzeria.Topping")),
        (EventFilter(signal="pre_save"), make_row()),
        (EventFilter(receiver="on_delete"), make_row()),
        (EventFilter(receiver="on_save"), make_row(receivers=[], receiver_count=0)),
        # The receiver filter looks at each receiver, not at the sender or the slowest one only.
        (EventFilter(receiver="pizzeria"), make_row()),
        (EventFilter(path="/PIZZAS"), make_row()),  # paths are case-sensitive
        (EventFilter(path="/pizzas/1/"), make_row()),
        (EventFilter(path="pizzas"), make_row()),  # a prefix, not a substring
        (EventFilter(path="/"), make_row(origin=COMMAND_ORIGIN)),
        (EventFilter(path="/"), make_row(origin={**make_row()["origin"], "path": None})),
        (EventFilter(min_duration_ms=1.234568), make_row()),
        (EventFilter(min_duration_ms=2.007), make_row(duration_ns=2_006_999)),
        (EventFilter(errors_only=True), make_row()),
    ],
)
def test_does_not_match(event_filter: EventFilter, row: dict[str, Any]) -> None:
    assert not event_filter.matches(row)


COMBINED = EventFilter(
    sender="pizza",
    signal="post_save",
    receiver="on_save",
    path="/pizzas/",
    min_duration_ms=1.0,
    errors_only=True,
)


def test_combined_fields_match_a_row_that_passes_them_all() -> None:
    assert COMBINED.matches(make_row(ok=False, error="builtins.RuntimeError: oven on fire"))


@pytest.mark.parametrize(
    "change",
    [
        {"sender": "pizzeria.Topping"},
        {"signal": "django.db.models.signals.pre_save"},
        {"receivers": ["other.mod.Class.method"]},
        {"origin": COMMAND_ORIGIN},
        {"duration_ns": 999_999},
        {"ok": True, "error": None},
    ],
)
def test_combined_fields_all_have_to_match(change: dict[str, Any]) -> None:
    row = make_row(**{"ok": False, "error": "builtins.RuntimeError: oven on fire", **change})
    assert not COMBINED.matches(row)


def test_parse_query_dict() -> None:
    query = QueryDict(
        "sender=+Pizza+&signal=post_save&receiver=on_save&path=%2Fpizzas%2F"
        "&min_duration_ms=2.5&errors_only=on"
    )
    assert EventFilter.parse(query) == EventFilter(
        sender="Pizza",
        signal="post_save",
        receiver="on_save",
        path="/pizzas/",
        min_duration_ms=2.5,
        errors_only=True,
    )


def test_parse_query_dict_of_an_empty_form() -> None:
    # An unchecked checkbox sends nothing; empty text inputs send empty strings.
    query = QueryDict("sender=&signal=&receiver=+&path=&min_duration_ms=")
    event_filter = EventFilter.parse(query)
    assert event_filter == EventFilter()
    assert not event_filter.active


def test_parse_query_dict_uses_the_last_of_repeated_values() -> None:
    assert EventFilter.parse(QueryDict("sender=a&sender=b")).sender == "b"


def test_parse_query_dict_with_unknown_field() -> None:
    with pytest.raises(FilterError) as caught:
        EventFilter.parse(QueryDict("sender=a&colour=red"))
    assert str(caught.value) == f"Unknown filter field(s): colour. {KNOWN}"


def test_parse_htmx_ws_message() -> None:
    message = json.loads(
        """{
            "action": "filter",
            "sender": " Pizza ",
            "signal": "",
            "receiver": null,
            "min_duration_ms": 5,
            "errors_only": true,
            "HEADERS": {"HX-Request": "true", "HX-Trigger": "filters", "HX-Current-URL": "/"}
        }"""
    )
    event_filter = EventFilter.parse(message, ignore=HTMX_ENVELOPE)
    assert event_filter == EventFilter(sender="Pizza", min_duration_ms=5.0, errors_only=True)


def test_htmx_envelope_is_unknown_unless_ignored() -> None:
    with pytest.raises(FilterError) as caught:
        EventFilter.parse({"HEADERS": {"HX-Request": "true"}, "action": "filter"})
    assert str(caught.value) == f"Unknown filter field(s): HEADERS, action. {KNOWN}"


def test_ignored_keys_are_skipped_and_only_those() -> None:
    event_filter = EventFilter.parse({"action": "filter", "sender": "a"}, ignore=["action"])
    assert event_filter == EventFilter(sender="a")
    with pytest.raises(FilterError) as caught:
        EventFilter.parse({"action": "filter", "HEADERS": {}}, ignore=["action"])
    assert str(caught.value) == f"Unknown filter field(s): HEADERS. {KNOWN}"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"sender": "  post  "}, EventFilter(sender="post")),
        ({"sender": "\tpizza\n"}, EventFilter(sender="pizza")),
        ({"path": " /pizzas/ "}, EventFilter(path="/pizzas/")),
        ({"sender": None, "signal": None, "receiver": None, "path": None}, EventFilter()),
        ({"min_duration_ms": None}, EventFilter()),
        ({"min_duration_ms": " "}, EventFilter()),
        ({"min_duration_ms": " 2.5 "}, EventFilter(min_duration_ms=2.5)),
        ({"min_duration_ms": "1e3"}, EventFilter(min_duration_ms=1000.0)),
        ({"min_duration_ms": 0}, EventFilter(min_duration_ms=0.0)),
        ({"min_duration_ms": "-0"}, EventFilter(min_duration_ms=0.0)),
        ({"min_duration_ms": 3_600_000}, EventFilter(min_duration_ms=3_600_000.0)),
        ({"min_duration_ms": 0.25}, EventFilter(min_duration_ms=0.25)),
        ({"sender": "x" * 200}, EventFilter(sender="x" * 200)),
        ({"sender": "  " + "x" * 200 + "  "}, EventFilter(sender="x" * 200)),
    ],
)
def test_parse_values(data: dict[str, Any], expected: EventFilter) -> None:
    assert EventFilter.parse(data) == expected


def test_parsed_duration_is_a_float_without_negative_zero() -> None:
    duration = EventFilter.parse({"min_duration_ms": "-0.0"}).min_duration_ms
    assert isinstance(duration, float)
    assert math.copysign(1, duration) == 1


@pytest.mark.parametrize("value", [True, "on", "ON", " On ", "true", "True", "1", "yes", "YES"])
def test_errors_only_true(value: object) -> None:
    assert EventFilter.parse({"errors_only": value}).errors_only is True


@pytest.mark.parametrize("value", [False, None, "", " ", "off", "false", "FALSE", "0", "no"])
def test_errors_only_false(value: object) -> None:
    assert EventFilter.parse({"errors_only": value}).errors_only is False


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"colour": "red"}, f"Unknown filter field(s): colour. {KNOWN}"),
        ({"Sender": "a"}, f"Unknown filter field(s): Sender. {KNOWN}"),
        ({"b": 1, "a": 2, "sender": "x"}, f"Unknown filter field(s): a, b. {KNOWN}"),
        ({1: "x"}, f"Unknown filter field(s): <a number>. {KNOWN}"),
        ({None: "x"}, f"Unknown filter field(s): <null>. {KNOWN}"),
        ({"k" * 1000: "x"}, f"Unknown filter field(s): {'k' * 40}…. {KNOWN}"),
        ({"a\nb": "x"}, f"Unknown filter field(s): a\\nb. {KNOWN}"),
        (
            {f"key{n}": n for n in range(1000)},
            f"Unknown filter field(s): key0, key1, key10, key100, key101 and 995 more. {KNOWN}",
        ),
        # Ignorable keys are only ignored when the caller says so.
        ({"HEADERS": {}}, f"Unknown filter field(s): HEADERS. {KNOWN}"),
    ],
)
def test_unknown_fields(data: dict[Any, Any], message: str) -> None:
    with pytest.raises(FilterError) as caught:
        EventFilter.parse(data)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sender": ["a", "b"]}, "sender must be text; got a list."),
        ({"signal": {"a": 1}}, "signal must be text; got an object."),
        ({"receiver": 3}, "receiver must be text; got a number."),
        ({"path": True}, "path must be text; got true/false."),
        ({"path": b"/pizzas/"}, "path must be text; got a value of type bytes."),
        ({"sender": "x" * 201}, "sender is too long: at most 200 characters, got 201."),
        (
            {"receiver": "x" * 1_000_000},
            "receiver is too long: at most 200 characters, got 1000000.",
        ),
        (
            {"min_duration_ms": "abc"},
            "min_duration_ms must be a number of milliseconds; got 'abc'.",
        ),
        (
            {"min_duration_ms": "9" * 50 + "x"},
            f"min_duration_ms must be a number of milliseconds; got '{'9' * 40}…'.",
        ),
        (
            {"min_duration_ms": True},
            "min_duration_ms must be a number of milliseconds; got true/false.",
        ),
        ({"min_duration_ms": [5]}, "min_duration_ms must be a number of milliseconds; got a list."),
        (
            {"min_duration_ms": {}},
            "min_duration_ms must be a number of milliseconds; got an object.",
        ),
        ({"min_duration_ms": "nan"}, "min_duration_ms must be a number of milliseconds; got NaN."),
        (
            {"min_duration_ms": math.nan},
            "min_duration_ms must be a number of milliseconds; got NaN.",
        ),
        ({"min_duration_ms": "-1"}, "min_duration_ms cannot be negative."),
        ({"min_duration_ms": -0.001}, "min_duration_ms cannot be negative."),
        ({"min_duration_ms": -math.inf}, "min_duration_ms cannot be negative."),
        ({"min_duration_ms": -(10**400)}, "min_duration_ms cannot be negative."),
        ({"min_duration_ms": 3_600_000.5}, "min_duration_ms can be at most 3600000 (one hour)."),
        ({"min_duration_ms": "inf"}, "min_duration_ms can be at most 3600000 (one hour)."),
        ({"min_duration_ms": math.inf}, "min_duration_ms can be at most 3600000 (one hour)."),
        ({"min_duration_ms": 10**400}, "min_duration_ms can be at most 3600000 (one hour)."),
        ({"min_duration_ms": "9" * 5000}, "min_duration_ms can be at most 3600000 (one hour)."),
        (
            {"errors_only": "maybe"},
            "errors_only must be on or off (true/false, yes/no, 1/0); got 'maybe'.",
        ),
        (
            {"errors_only": 1},
            "errors_only must be on or off (true/false, yes/no, 1/0); got a number.",
        ),
        (
            {"errors_only": ["on"]},
            "errors_only must be on or off (true/false, yes/no, 1/0); got a list.",
        ),
    ],
)
def test_unusable_values(data: dict[str, Any], message: str) -> None:
    with pytest.raises(FilterError) as caught:
        EventFilter.parse(data)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "Filters must be an object of named fields; got a list."),
        ("sender=a", "Filters must be an object of named fields; got text."),
        (None, "Filters must be an object of named fields; got null."),
        (5, "Filters must be an object of named fields; got a number."),
    ],
)
def test_data_that_is_not_a_mapping(data: Any, message: str) -> None:
    # json.loads() of a WebSocket message can be any JSON value.
    with pytest.raises(FilterError) as caught:
        EventFilter.parse(data)
    assert str(caught.value) == message


class _Opaque:
    def __str__(self) -> str:
        raise RuntimeError("str() of user data")

    __repr__ = __str__


WEIRD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    10**400,
    1e308,
    -1e-308,
    math.nan,
    "",
    "\x00",
    "🍕" * 300,
    "x" * 100_000,
    "1" * 5000,
    "1_000",
    "0x10",
    "True",
    [],
    [[[]]],
    {},
    {"a": {"b": {"c": []}}},
    b"bytes",
    _Opaque(),
]


@pytest.mark.parametrize("field_name", EventFilter.FIELDS)
@pytest.mark.parametrize("value", WEIRD_VALUES, ids=lambda value: type(value).__name__)
def test_parse_raises_only_filter_error(field_name: str, value: Any) -> None:
    try:
        event_filter = EventFilter.parse({field_name: value})
    except FilterError as error:
        message = str(error)
    else:
        message = ""
        assert isinstance(event_filter.matches(make_row()), bool)
    # Messages name the field at fault, so a user knows what to fix.
    assert not message or message.startswith(field_name)


def test_parse_raises_filter_error_for_an_opaque_key() -> None:
    with pytest.raises(FilterError) as caught:
        EventFilter.parse({_Opaque(): 1})
    assert str(caught.value) == f"Unknown filter field(s): <a value of type _Opaque>. {KNOWN}"


@pytest.mark.parametrize(
    ("event_filter", "query"),
    [
        (EventFilter(), {}),
        (EventFilter(sender="Pizza"), {"sender": "Pizza"}),
        (EventFilter(min_duration_ms=5.0), {"min_duration_ms": "5"}),
        (EventFilter(min_duration_ms=0.0), {"min_duration_ms": "0"}),
        (EventFilter(min_duration_ms=2.5), {"min_duration_ms": "2.5"}),
        (EventFilter(errors_only=True), {"errors_only": "on"}),
        (
            COMBINED,
            {
                "sender": "pizza",
                "signal": "post_save",
                "receiver": "on_save",
                "path": "/pizzas/",
                "min_duration_ms": "1",
                "errors_only": "on",
            },
        ),
    ],
)
def test_to_query(event_filter: EventFilter, query: dict[str, str]) -> None:
    assert event_filter.to_query() == query


@pytest.mark.parametrize(
    "event_filter",
    [
        EventFilter(),
        COMBINED,
        EventFilter(sender="a&b=c", path="/pizzas/?x=1#y"),
        EventFilter(signal="ünïcode 🍕"),
        EventFilter(min_duration_ms=0.1),
        EventFilter(min_duration_ms=1e-7),
        EventFilter(min_duration_ms=1 / 3),
        EventFilter(min_duration_ms=3_600_000.0),
        EventFilter(errors_only=True),
    ],
)
def test_round_trip(event_filter: EventFilter) -> None:
    assert EventFilter.parse(event_filter.to_query()) == event_filter
    # The way the views use it: as a URL's query string, read back by Django.
    assert EventFilter.parse(QueryDict(urlencode(event_filter.to_query()))) == event_filter


def test_default_filter_is_not_active() -> None:
    assert not EventFilter().active
    assert not EventFilter.parse({}).active


@pytest.mark.parametrize(
    "event_filter",
    [
        EventFilter(sender="a"),
        EventFilter(signal="a"),
        EventFilter(receiver="a"),
        EventFilter(path="/"),
        EventFilter(min_duration_ms=0.0),
        EventFilter(errors_only=True),
    ],
)
def test_any_field_makes_the_filter_active(event_filter: EventFilter) -> None:
    assert event_filter.active


def test_replace_prepares_the_new_needles() -> None:
    event_filter = dataclasses.replace(EventFilter(sender="topping"), sender="PIZZA")
    assert event_filter.matches(make_row())
    assert not dataclasses.replace(event_filter, signal="pre_save").matches(make_row())


def test_prepared_needles_do_not_affect_equality_or_repr() -> None:
    assert EventFilter(sender="Pizza") == EventFilter.parse({"sender": " Pizza "})
    assert hash(EventFilter(sender="Pizza")) == hash(EventFilter.parse({"sender": "Pizza"}))
    assert repr(EventFilter(sender="x")) == (
        "EventFilter(sender='x', signal='', receiver='', path='', process='', task='', kind='', "
        "min_duration_ms=None, errors_only=False, hide_signals=frozenset(), "
        "hide_senders=frozenset(), hide_receivers=frozenset())"
    )


def test_hidden_signals_senders_and_receivers_hide_their_rows() -> None:
    hiding = EventFilter.parse(
        {
            "hide_signals": "django.core.signals.request_started, django.core.signals.x",
            "hide_senders": ["pizzeria.Topping"],
            "hide_receivers": "a.only,b.other",
        }
    )
    assert hiding.hide_signals == {"django.core.signals.request_started", "django.core.signals.x"}
    assert not hiding.matches(make_row(signal="django.core.signals.request_started"))
    assert hiding.matches(make_row(signal="django.core.signals.request_started_late"))
    assert not hiding.matches(make_row(sender="pizzeria.Topping"))
    assert hiding.matches(make_row(sender="pizzeria.Toppings"))
    assert not hiding.matches(make_row(receivers=["a.only"]))
    assert not hiding.matches(make_row(receivers=["a.only", "b.other"]))
    assert hiding.matches(make_row(receivers=["a.only", "c.shown"]))  # one receiver still shown
    assert hiding.matches(make_row(receivers=[]))
    assert hiding.to_query()["hide_receivers"] == "a.only,b.other"
    assert EventFilter.parse(hiding.to_query()) == hiding


def test_hiding_adds_to_the_filter_and_is_bounded() -> None:
    first = EventFilter(sender="Pizza").with_hidden("hide_signals", "app.signals.baked")
    second = first.with_hidden("hide_signals", "app.signals.sliced")
    assert second.hide_signals == {"app.signals.baked", "app.signals.sliced"}
    assert second.sender == "Pizza"
    assert "hide_signals=app.signals.baked,app.signals.sliced" in second.describe()
    assert EventFilter().describe() == "no filter (every event is shown)"
    with pytest.raises(FilterError, match="can hold at most"):
        EventFilter.parse({"hide_senders": ",".join(f"s{n}" for n in range(51))})
    with pytest.raises(FilterError, match="Only hide_signals"):
        first.with_hidden("sender", "x")
    with pytest.raises(FilterError, match="hide_senders must be comma-separated labels"):
        EventFilter.parse({"hide_senders": 5})


def _caused_by(origin: dict[str, object]) -> dict[str, object]:
    return {
        "ok": True,
        "duration_ns": 1,
        "sender": "pizzeria.Order",
        "signal": "django.db.models.signals.post_save",
        "receivers": ["pizzeria.receivers.on_save"],
        "origin": {"pid": 1, "host": "h", **origin},
    }


TASK_ORIGIN = {"kind": "task", "name": "pizzeria.tasks.bake_in_oven", "task_id": "AbC123"}
REQUEST_ORIGIN = {"kind": "request", "name": "GET /", "method": "GET", "path": "/"}


@pytest.mark.parametrize(
    ("query", "admitted"),
    [
        ({"task": "bake"}, {"task"}),
        ({"task": "BAKE_IN"}, {"task"}),
        ({"task": "abc123"}, {"task"}),  # its id, whole
        ({"task": "abc"}, set()),  # not part of an id
        ({"kind": "task"}, {"task"}),
        ({"kind": "request"}, {"request"}),
        ({"kind": "command"}, set()),
        ({"kind": ""}, {"task", "request"}),
    ],
)
def test_task_and_kind_pick_sends_and_requests_by_what_caused_them(
    query: dict[str, str], admitted: set[str]
) -> None:
    event_filter = EventFilter.parse(query)
    origins = {"task": TASK_ORIGIN, "request": REQUEST_ORIGIN}
    rows = {kind for kind, origin in origins.items() if event_filter.matches(_caused_by(origin))}
    summaries = {
        kind
        for kind, origin in origins.items()
        if event_filter.matches_request(
            {"failed": False, "duration_ns": 5, "host": "h", "pid": 1, "receivers": [], **origin}
        )
    }
    assert rows == summaries == admitted
    assert event_filter.needs_events is bool(query.get("task") or query.get("kind"))


@pytest.mark.parametrize("kind", ["tasks", "Request", "worker", ["task", "command"], 3])
def test_an_unknown_kind_is_refused(kind: object) -> None:
    with pytest.raises(FilterError, match="kind must be"):
        EventFilter.parse({"kind": kind})
