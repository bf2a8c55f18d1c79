"""The latency table and the request list as HTML: what the page shows and htmx swaps in."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.urls import reverse

from signal_dashboard.capture.histogram import Histogram
from signal_dashboard.record.stats.series import Storms
from signal_dashboard.record.stats.table import TableQuery, TableRow
from signal_dashboard.web.tables import (
    SPARKLINE_BINS,
    latency_table_html,
    request_rows_html,
    request_table_html,
    sparkline,
    tables_html,
)

TIMES = "\N{MULTIPLICATION SIGN}"


def histogram(*values: int, errors: int = 0) -> Histogram:
    result = Histogram()
    for index, value in enumerate(values):
        result.add(value, error=index < errors)
    return result


def context(**changes: Any) -> dict[str, Any]:
    rows = [
        TableRow(
            name="shop.receivers.<b>on_save</b>",
            histogram=histogram(1_000_000, 2_000_000, 40_000_000, errors=1),
            location="shop/receivers.py:12 & more",
            storms=Storms(requests=3, max_calls=120),
            slow=True,
        ),
        TableRow(name="shop.receivers.on_delete", histogram=histogram(500_000), storms=Storms()),
    ]
    values: dict[str, Any] = {
        "latency_rows": rows,
        "latency_total": len(rows),
        "table": TableQuery(),
        "window_seconds": 300,
        "from_buffer": False,
        "unreadable": 0,
        "request_rows": [],
        "storm_threshold": 50,
    }
    return {**values, **changes}


def summary(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": 7,
        "kind": "request",
        "method": "POST",
        "path": "/orders/?a=<1>&b=2",
        "name": "POST /orders/",
        "status": 201,
        "error": None,
        "duration_ns": 12_345_678,
        "signal_count": 4,
        "receiver_ns": 2_000_000,
        "receiver_share": 0.162,
        "query_count": 12,
        "receiver_query_count": 9,
        "slowest_receiver": "shop.receivers.on_save",
        "slowest_receiver_ns": 1_500_000,
        "storms": [],
    }
    summary = {**values, **changes}
    return {**summary, "url": reverse("signal_dashboard:request", args=[summary["id"]])}


class _Cells(HTMLParser):
    """The text of each cell of each body row, and each row's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[dict[str, str | None], list[str]]] = []
        self._in_body = self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append((dict(attrs), []))
        elif tag == "td" and self.rows:
            self._in_cell = True
            self.rows[-1][1].append("")
        elif tag == "svg":
            self._in_cell = False  # a sparkline's titles are not the cell's text

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.rows[-1][1][-1] += data


def cells(html: str) -> list[tuple[dict[str, str | None], list[str]]]:
    parser = _Cells()
    parser.feed(html)
    return [(attrs, [" ".join(cell.split()) for cell in row]) for attrs, row in parser.rows]


def test_latency_rows_show_each_receivers_figures_escaped() -> None:
    rows = context()["latency_rows"]
    rows[0].queries = [6, 4, rows[0].histogram.sum_ns // 4]  # 3 calls: 2 per call, a quarter
    html = latency_table_html(context(latency_rows=rows))
    assert "<b>" not in html
    (first, first_cells), (second, _) = cells(html)
    assert first["class"] == "sd-lat-row sd-slow sd-storm"
    assert first["data-name"] == "shop.receivers.<b>on_save</b>"
    assert first["hx-get"] == (
        reverse("signal_dashboard:receiver") + "?label=shop.receivers.%3Cb%3Eon_save%3C/b%3E"
    )
    assert first_cells[:3] == ["shop.receivers.<b>on_save</b>", "3", "1"]
    assert first_cells[4] == f"{rows[0].histogram.percentile(50) / 1e6:.3f} ms"  # p50
    assert first_cells[4].startswith("2.0")  # within the histogram's 0.8% of 2 ms
    assert first_cells[7] == "40.000 ms"  # max, exact
    assert first_cells[8:10] == ["2 max 4", "25.0%"]  # queries per call, their share
    assert first_cells[11] == f"storm 3{TIMES} · up to 120 calls"
    assert 'title="shop/receivers.py:12 &amp; more"' in html
    assert 'title="ran more than 50 times inside one request"' in html
    assert second["class"] == "sd-lat-row"


def test_the_caption_and_headings_follow_the_query() -> None:
    html = latency_table_html(context(latency_total=140, from_buffer=True))
    caption = re.search(r"<caption>(.*?)</caption>", html, re.DOTALL)
    assert caption is not None
    assert " ".join(caption.group(1).split()) == (
        "140 receivers, last 300 s, from this process's buffered sends that match the filter, "
        "first 2 shown"
    )
    assert re.findall(r'data-sort="(\w+)"[^>]*>[^<]*? ([▼▲])</button>', html) == [("p95", "▼")]
    assert "first 2 shown" in latency_table_html(context(latency_total=3))
    assert "shown" not in latency_table_html(context(latency_total=2))
    by_signal = latency_table_html(
        context(
            table=TableQuery.parse({"group": "signal", "sort": "name", "span": "all"}),
            latency_total=1,
        )
    )
    assert "<caption>1 signal, since start</caption>" in by_signal
    assert re.findall(r'data-sort="(\w+)"[^>]*>[^<]*? ([▼▲])</button>', by_signal) == [
        ("name", "▲")
    ]
    assert ">Signal ▲</button>" in by_signal
    assert "<th>Storms</th>" not in by_signal
    assert "hx-get" not in by_signal


def test_the_caption_says_how_many_processes_statistics_are_left_out() -> None:
    def caption(unreadable: int) -> str:
        html = latency_table_html(context(unreadable=unreadable))
        found = re.search(r"<caption>(.*?)</caption>", html, re.DOTALL)
        assert found is not None
        return " ".join(found.group(1).split())

    assert caption(0) == "2 receivers, last 300 s"
    assert caption(1) == (
        "2 receivers, last 300 s. Left out: the statistics of 1 process that could not be read "
        "(see the log)"
    )
    assert caption(3).endswith("the statistics of 3 processes that could not be read (see the log)")


def test_empty_tables_say_so() -> None:
    html = latency_table_html(context(latency_rows=[], latency_total=0))
    assert cells(html) == [({}, ["No receiver calls recorded in the last 300 s."])]
    since_start = context(latency_rows=[], latency_total=0, table=TableQuery(window=False))
    assert cells(latency_table_html(since_start)) == [({}, ["No receiver calls recorded."])]
    # Calls there may be, only none the page's filter admits.
    filtered = context(latency_rows=[], latency_total=0, filtered=True)
    assert cells(latency_table_html(filtered)) == [
        ({}, ["No receiver calls match the filter in the last 300 s."])
    ]
    assert cells(request_rows_html([])) == []  # no tbody of its own
    assert "No request or command has finished yet." in request_table_html(context())


def test_only_pushed_tables_replace_the_pages_own() -> None:
    assert 'id="sd-latency" class="sd-latency">' in latency_table_html(context())
    assert 'id="sd-requests" class="sd-requests">' in request_table_html(context())
    pushed = tables_html(context())
    assert pushed.count('hx-swap-oob="outerHTML"') == 2
    assert pushed.index('id="sd-latency"') < pushed.index('id="sd-requests"')


def test_a_sparkline_has_a_bar_per_occupied_step() -> None:
    assert sparkline(Histogram()) == ""
    html = sparkline(histogram(1_000, 1_000, 1_000, 1_000_000))
    heights = [float(h) for h in re.findall(r"v-([\d.]+)h", html)]
    assert heights[0] == 20.0
    assert heights[1] == pytest.approx(20 / 3, abs=0.05)
    assert "<title>0.001 ms to 1.000 ms, log scale; calls per step: 3, 1</title>" in html
    spread = sparkline(histogram(*(10**exponent for exponent in range(3, 9))))
    assert len(re.findall("M[\\d.]+,20v", spread)) == 6 <= SPARKLINE_BINS


def test_request_rows_show_outcome_and_name_their_request() -> None:
    # (A click opens the waterfall of the request whose id the row names: see
    # test_browser_ux.WhereTheEyeIsTests.)
    ((attrs, row_cells),) = cells(request_table_html(context(request_rows=[summary()])))
    assert attrs == {"class": "sd-req-row", "data-id": "7", "data-kind": "request"}
    assert row_cells == [
        "POST /orders/?a=<1>&b=2",
        "201",
        "12.346 ms",
        "4",
        "2.000 ms",
        "16.2%",
        "9 of 12",
        "receivers.on_save 1.500 ms",
        "",
    ]


@pytest.mark.parametrize(
    ("changes", "classes", "outcome"),
    [
        ({"status": 500}, "sd-req-row sd-failed", "500"),
        ({"status": 499}, "sd-req-row", "499"),
        ({"status": None}, "sd-req-row", ""),  # still running when it was summarized
        ({"kind": "command", "name": "migrate"}, "sd-req-row", "ok"),
        (
            {"kind": "command", "name": "migrate", "status": None, "error": "Boom <x>"},
            "sd-req-row sd-failed",
            "Boom <x>",
        ),
        (
            {"storms": [{"receiver": "shop.receivers.on_save", "calls": 60}]},
            "sd-req-row sd-storm",
            "201",
        ),
    ],
)
def test_failed_and_storming_requests_are_marked(
    changes: dict[str, Any], classes: str, outcome: str
) -> None:
    ((attrs, row_cells),) = cells(request_rows_html([summary(**changes)]).join(["<tbody>", ""]))
    assert attrs["class"] == classes
    assert row_cells[1] == outcome
    if changes.get("kind") == "command":
        assert row_cells[0] == "command migrate"
    if changes.get("storms"):
        assert row_cells[8] == f"storm receivers.on_save {TIMES}60"


def test_counts_are_grouped_as_the_settings_say_but_ids_never(settings: Any) -> None:
    settings.USE_THOUSAND_SEPARATOR = True
    settings.NUMBER_GROUPING = 3
    many = context(latency_total=12345, request_rows=[summary(id=12345, signal_count=4321)])
    assert "<caption>12,345 receivers, last 300 s, first 2 shown</caption>" in (
        " ".join(latency_table_html(many).split()).replace("> ", ">").replace(" <", "<")
    )
    ((attrs, row_cells),) = cells(request_table_html(many))
    assert attrs["data-id"] == "12345"
    assert row_cells[3] == "4,321"
