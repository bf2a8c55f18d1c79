"""The stream's pushes as HTML: what htmx swaps in, escaped."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from django.template.loader import render_to_string

from signal_dashboard.web import rows
from signal_dashboard.web.rows import clock, push_html, transport_html

LOCAL = {"shared": False, "up": True, "error": ""}


def push(**changes: Any) -> str:
    values: dict[str, Any] = {
        "rows_html": "<tr>row</tr>",
        "replace": False,
        "rate": 12.345,
        "dropped": 3,
        "transport": LOCAL,
        "paused": False,
        "held": 0,
        "new_senders": [],
    }
    return push_html(**{**values, **changes})


def span(html: str, element_id: str) -> str:
    match = re.search(rf'<span id="{element_id}"([^>]*)>(.*?)</span>', html)
    assert match, element_id
    return match.group(1) + "|" + match.group(2)


def test_new_rows_go_on_top_and_a_replacement_clears_the_error() -> None:
    added = push()
    assert '<tbody id="sd-rows" hx-swap-oob="afterbegin"><tr>row</tr></tbody>' in added
    assert "sd-error" not in added
    replaced = push(replace=True, rows_html="")
    assert '<tbody id="sd-rows" hx-swap-oob="innerHTML"></tbody>' in replaced
    assert '<div id="sd-error" class="sd-error-message" role="alert" hidden></div>' in replaced
    assert "sd-rows" not in push(rows_html="")  # a status-only push leaves the rows alone


def test_the_status_line_shows_rate_drops_and_what_is_held_back() -> None:
    html = push(paused=True, held=2)
    assert span(html, "sd-rate") == "|12.3"
    assert span(html, "sd-dropped") == "|3"
    assert span(html, "sd-held") == " |· paused · 2 held back"
    assert span(push(), "sd-held") == " hidden|· paused · 0 held back"


def test_numbers_follow_the_localization_settings(settings: Any) -> None:
    settings.USE_THOUSAND_SEPARATOR = True
    settings.NUMBER_GROUPING = 3
    html = push(rate=1234.56, dropped=12345)
    assert span(html, "sd-rate") == "|1,234.6"
    assert span(html, "sd-dropped") == "|12,345"


def test_new_senders_are_escaped_into_the_datalist() -> None:
    html = push(new_senders=['<b>"Pizza"</b>', "Order"])
    assert html.endswith(
        '<datalist id="sd-senders" hx-swap-oob="beforeend">'
        '<option value="&lt;b&gt;&quot;Pizza&quot;&lt;/b&gt;"><option value="Order"></datalist>'
    )
    assert "sd-senders" not in push()


@pytest.mark.parametrize(
    ("transport", "expected"),
    [
        (LOCAL, '<span id="sd-transport"></span>'),
        (
            {"shared": True, "up": True, "error": ""},
            '<span id="sd-transport"> · every process, through Redis</span>',
        ),
        (
            {"shared": True, "up": False, "error": "Error <111> connecting"},
            '<span id="sd-transport" class="sd-error-text"> · every process, through Redis'
            " · transport down: Error &lt;111&gt; connecting</span>",
        ),
    ],
)
def test_the_transport_is_named_and_its_error_escaped(
    transport: dict[str, Any], expected: str
) -> None:
    assert transport_html(transport) == expected
    assert expected in push(transport=transport)


def test_the_clock_is_utc_to_the_millisecond() -> None:
    rng = random.Random(5)
    stamps = [0.0, 59.9999, 86_399.9994, 86_400.0, 1_763_842_000.0005, 1_763_842_000.123456]
    stamps += [rng.uniform(0, 4e9) for _ in range(2000)]
    for stamp in stamps:
        expected = datetime.fromtimestamp(stamp, tz=UTC).strftime("%H:%M:%S.%f")[:-3]
        assert clock(stamp) == expected, stamp


def test_escaped_strings_are_kept_for_reuse_but_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows, "ESCAPED_KEPT", 3)
    monkeypatch.setattr(rows, "_escaped", {})
    for index in range(10):
        assert rows._text(f"<{index}>") == f"&lt;{index}&gt;"
        assert rows._text(f"<{index}>") == f"&lt;{index}&gt;"  # the kept form
        assert len(rows._escaped) <= 3
    assert rows._text(True) == "True"  # equal to 1 as a dict key, but never kept
    assert rows._text(1) == "1"
    long = "<" * (rows.ESCAPED_LENGTH + 1)
    assert rows._text(long) == "&lt;" * len(long)
    assert long not in rows._escaped


def test_a_rows_id_and_url_are_escaped_but_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows, "_escaped", {})
    origin = {"kind": "request", "name": "GET /", "method": "GET", "path": "/<p>", "pid": 7}
    row = {
        "signal": "app.signals.<baked>",
        "sender": "pizzeria.Pizza",
        "method": "send",
        "timestamp": 0.0,
        "duration_ns": 1_000,
        "receiver_count": 1,
        "slowest_receiver": "app.receivers.bake",
        "slowest_receiver_ns": 1_000,
        "ok": True,
        "error": None,
        "origin": origin,
    }
    made = [rows.row_html({**row, "id": f"<h>:7:{index}"}) for index in range(20)]
    assert 'data-id="&lt;h&gt;:7:19"' in made[-1]
    assert 'hx-get="/signals/events/%3Ch%3E:7:19/"' in made[-1]
    assert "app.signals.<baked>" in rows._escaped  # repeated in every row: kept
    assert not [text for text in rows._escaped if ":7:" in text]


def _varied_rows() -> list[dict[str, Any]]:
    origin = {"kind": "request", "name": "GET /", "method": "GET", "path": "/<p>?a=1&b=2"}
    command = {"kind": "command", "name": "migrate", "host": "web-1", "pid": 12345}
    base: dict[str, Any] = {
        "id": "h:7:1",
        "signal": "django.db.models.signals.post_save",
        "sender": "pizzeria.Pizza",
        "method": "send_robust",
        "timestamp": 1_763_842_000.123456,
        "duration_ns": 1_234_567,
        "receiver_count": 12345,
        "slowest_receiver": "pizzeria.receivers.<bake>",
        "slowest_receiver_ns": 1_000_000,
        "ok": True,
        "error": None,
        "origin": origin,
    }
    return [
        base,
        {**base, "id": "<x> '\"&", "sender": '<b>"Pizza"</b>', "signal": "app.<sig>"},
        {**base, "ok": False, "error": "ValueError: <boom> & 'more'"},
        {**base, "duration_ns": 900_000_000, "slowest_receiver": None},
        {**base, "origin": command, "history_id": "1763842000123-0"},
        {**base, "origin": {"kind": "process", "name": "<worker>"}, "receiver_count": 0},
    ]


@pytest.mark.parametrize("separator", [False, True])
def test_the_row_template_documents_row_html_exactly(settings: Any, separator: bool) -> None:
    settings.USE_THOUSAND_SEPARATOR = separator
    settings.NUMBER_GROUPING = 3
    for row in _varied_rows():
        templated = render_to_string("signal_dashboard/_row.html", {"row": row})
        assert templated == rows.row_html(row), row


@pytest.mark.parametrize(
    ("label", "short"),
    [
        ("django.db.models.signals.post_save", "signals.post_save"),
        ("pizzeria.Topping", "pizzeria.Topping"),
        (
            "<django_tasks_db.backend.DatabaseBackend instance>",
            "<backend.DatabaseBackend instance>",
        ),
        ("<int>", "<int>"),
        ("", ""),
    ],
)
def test_short_labels_keep_an_instances_brackets(label: str, short: str) -> None:
    from signal_dashboard.capture.labels import short_label

    assert short_label(label) == short
