"""The latency table and the request list: what their templates need beyond the data.

The markup is in ``templates/signal_dashboard/_latency_table.html``, ``_request_table.html``,
``_request_rows.html`` and ``_sparkline.html``, which a project can override. Every open
dashboard is sent both again while traffic flows, made once per page filter and table query
(see ``SharedTables`` in consumers.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from django.template.loader import render_to_string

from .. import conf
from ..capture.histogram import Histogram
from ..record.stats.table import TableQuery

SPARKLINE_WIDTH = 96
SPARKLINE_HEIGHT = 20
SPARKLINE_BINS = 24
# Request rows kept made: the request list shows 50 (queries.MAX_REQUEST_ROWS) per filter.
REQUEST_ROWS_KEPT = 512
# The columns a latency table can be sorted by, after its first (the group), with headings.
SORTABLE = (
    ("count", "Calls"),
    ("errors", "Errors"),
    ("mean", "Mean"),
    ("p50", "p50"),
    ("p95", "p95"),
    ("p99", "p99"),
    ("max", "Max"),
)
# Per receiver call only: the queries each made (with the sends it made), and their share of
# the calls' time.
RECEIVER_SORTABLE = (("queries", "Queries/call"), ("query_share", "In queries"))
GROUP_HEADINGS = {"receiver": "Receiver", "signal": "Signal", "sender": "Sender"}


class Sparkline(NamedTuple):
    """A latency histogram as bars, log(duration) across and count up: an SVG path's data
    (geometry, no text) and the chart's title."""

    title: str
    path: str
    low: str  # the fastest call and the slowest, as labels at either end
    high: str
    width: int = SPARKLINE_WIDTH
    height: int = SPARKLINE_HEIGHT


def tables_html(context: Mapping[str, Any]) -> str:
    """Both tables, as elements that replace the page's own (htmx's hx-swap-oob)."""
    return render_to_string("signal_dashboard/_tables.html", context)


def latency_table_html(context: Mapping[str, Any], oob: bool = False) -> str:
    """The latency table of ``queries.tables_context()``."""
    return render_to_string("signal_dashboard/_latency_table.html", {**context, "oob": oob})


def request_table_html(context: Mapping[str, Any], oob: bool = False) -> str:
    """The list of finished requests and commands of ``queries.tables_context()``."""
    return render_to_string("signal_dashboard/_request_table.html", {**context, "oob": oob})


def request_rows_html(summaries: list[Mapping[str, Any]], filtered: bool = False) -> str:
    """A row per request summary (see ``queries.request_summary()``), or a word on why there
    is none (``filtered``: the page's filter admits none)."""
    if not summaries:
        return render_to_string("signal_dashboard/_request_none.html", {"filtered": filtered})
    return "".join(map(_request_row_html, summaries))


def _row_key(summary: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a request's row shows; a finished request's never changes, so the tables made
    every second render only the requests new since."""
    storms = tuple((storm["receiver"], storm["calls"]) for storm in summary["storms"])
    return (*(summary.get(name) for name in _ROW_FIELDS), storms)


_ROW_FIELDS = (
    "id",
    "host",
    "pid",
    "url",
    "kind",
    "name",
    "method",
    "path",
    "status",
    "error",
    "task_status",
    "enqueued_by",
    "remote",
    "key",
    "stream_url",
    "duration_ns",
    "signal_count",
    "receiver_ns",
    "receiver_share",
    "query_count",
    "receiver_query_count",
    "slowest_receiver",
    "slowest_receiver_ns",
)


# Made rows by _row_key(), oldest first (tables are made on worker threads: a dict's single
# operations are atomic, and a row made twice is made alike).
_request_rows: dict[tuple[Any, ...], str] = {}


def _request_row_html(summary: Mapping[str, Any]) -> str:
    key = _row_key(summary)
    html = _request_rows.get(key)
    if html is None:
        html = render_to_string("signal_dashboard/_request_row.html", {"r": summary})
        _request_rows[key] = html
        while len(_request_rows) > REQUEST_ROWS_KEPT:
            _request_rows.pop(next(iter(_request_rows)), None)
    return html


@conf.on_change
def _forget_request_rows(config: dict[str, Any]) -> None:
    """Rows made under other number formats are not shown again."""
    _request_rows.clear()


def sort_headings(table: TableQuery) -> list[tuple[str, str, str]]:
    """The latency table's sortable headings: (column, label, arrow on the sorted one)."""
    columns = [("name", GROUP_HEADINGS.get(table.group, "Sender")), *SORTABLE]
    if table.group == "receiver":
        columns += RECEIVER_SORTABLE
    arrow = "▼" if table.descending else "▲"
    return [(column, label, arrow if table.sort == column else "") for column, label in columns]


def sparkline_bars(histogram: Histogram) -> Sparkline | None:
    """A histogram's sparkline, a bar per occupied step, the tallest full height; None when
    the histogram is empty. (One path, not an element per bar: the template engine's cost is
    per value rendered.)"""
    counts = histogram.shape(SPARKLINE_BINS)
    if not counts:
        return None
    tallest = max(counts)
    step = SPARKLINE_WIDTH / len(counts)
    bars = []
    for index, count in enumerate(counts):
        if count:
            height = max(1.0, SPARKLINE_HEIGHT * count / tallest)
            bottom = SPARKLINE_HEIGHT
            bars.append(f"M{index * step:.1f},{bottom}v-{height:.1f}h{step - 1:.1f}V{bottom}z")
    title = (
        f"{histogram.min_ns / 1e6:.3f} ms to {histogram.max_ns / 1e6:.3f} ms, log scale; "
        f"calls per step: {', '.join(str(count) for count in counts if count)}"
    )
    return Sparkline(title, "".join(bars), _short_ms(histogram.min_ns), _short_ms(histogram.max_ns))


def _short_ms(nanoseconds: int) -> str:
    """A duration to three significant digits, or whole above 100 ms: 0.0123, 1.23, 1230 ms."""
    millis = nanoseconds / 1e6
    if millis >= 100:
        return f"{millis:.0f} ms"
    return f"{millis:.3g} ms"


def sparkline(histogram: Histogram) -> str:
    """A histogram's sparkline as SVG ("" when it is empty)."""
    return render_to_string("signal_dashboard/_sparkline.html", {"histogram": histogram})


def request_failed(summary: Mapping[str, Any]) -> bool:
    """Whether a request answered 5xx, a command raised, or a task failed."""
    status = summary["status"]
    return (
        bool(summary["error"])
        or summary.get("task_status") == "FAILED"
        or (status is not None and status >= 500)
    )
