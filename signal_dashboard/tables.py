"""The latency table's and the request list's HTML, made in Python.

Every open dashboard is sent both again about once a second while traffic flows (see
``SharedTables`` in consumers.py), with up to a hundred latency rows and fifty requests.
Django's template engine took some 18 ms to make the demo's (ten latency rows, fifty
requests); this takes about 2.6 ms, the statistics the rows read included. The page's first
rendering uses the same functions, through the ``latency_table`` and ``request_table`` tags.
Every value is escaped as ``{{ }}`` in a template would escape it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from django.urls import reverse

from .labels import origin_label, short_label
from .rows import _number, _text, ms, percent, url_parts
from .stats.histogram import Histogram
from .stats.table import TableQuery, TableRow

SPARKLINE_WIDTH = 96
SPARKLINE_HEIGHT = 20
SPARKLINE_BINS = 24
# The columns a latency table can be sorted by, with their headings.
_SORTABLE = (
    ("count", "Calls"),
    ("errors", "Errors"),
    ("mean", "Mean"),
    ("p50", "p50"),
    ("p95", "p95"),
    ("p99", "p99"),
    ("max", "Max"),
)
_TIMES = "\N{MULTIPLICATION SIGN}"
_GROUP_HEADINGS = {"receiver": "Receiver", "signal": "Signal", "sender": "Sender"}


def tables_html(context: Mapping[str, Any]) -> str:
    """Both tables, as elements that replace the page's own (htmx's hx-swap-oob)."""
    return latency_table_html(context, oob=True) + "\n" + request_table_html(context, oob=True)


def latency_table_html(context: Mapping[str, Any], oob: bool = False) -> str:
    """The latency table of ``queries.tables_context()``."""
    rows: Sequence[TableRow] = context["latency_rows"]
    table: TableQuery = context["table"]
    total: int = context["latency_total"]
    window_seconds = _number(context["window_seconds"])
    by_receiver = table.group == "receiver"
    caption = f"{_number(total)} {_text(table.group)}{'' if total == 1 else 's'}, " + (
        f"last {window_seconds} s" if table.window else "since start"
    )
    if context["from_buffer"]:
        caption += ", from the buffered sends that match the filter"
    if total > len(rows):
        caption += f", first {_number(len(rows))} shown"
    unreadable = context["unreadable"]
    if unreadable:
        caption += (
            f". Left out: the statistics of {_number(unreadable)} "
            f"process{'' if unreadable == 1 else 'es'} that could not be read (see the log)"
        )
    headings = [_sort_button(table, "name", _GROUP_HEADINGS.get(table.group, "Sender"))]
    headings += [_sort_button(table, column, label) for column, label in _SORTABLE]
    headings.append("<th>Histogram</th>")
    if by_receiver:
        headings.append("<th>Storms</th>")
    if rows:
        receiver_url = reverse("signal_dashboard:receiver")
        storm_threshold = _number(context["storm_threshold"])
        body = "".join(
            _latency_row(row, by_receiver, receiver_url, storm_threshold) for row in rows
        )
    else:
        window = f" in the last {window_seconds} s" if table.window else ""
        body = (
            f'<tr><td colspan="10" class="sd-muted">No receiver calls recorded{window}.</td></tr>'
        )
    swap = ' hx-swap-oob="outerHTML"' if oob else ""
    return (
        f'<table id="sd-latency" class="sd-latency"{swap}>\n'
        f"  <caption>{caption}</caption>\n"
        f"  <thead>\n    <tr>{''.join(headings)}</tr>\n  </thead>\n"
        f"  <tbody>{body}</tbody>\n"
        "</table>"
    )


def _sort_button(table: TableQuery, column: str, label: str) -> str:
    arrow = ("▼" if table.descending else "▲") if table.sort == column else ""
    return (
        f'<th><button type="button" class="sd-sort" data-sort="{column}" ws-send '
        f'hx-vals=\'{{"action": "table", "sort": "{column}"}}\'>{label} {arrow}</button></th>'
    )


def _latency_row(row: TableRow, by_receiver: bool, receiver_url: str, storm_threshold: str) -> str:
    summary = row.summary
    storms = row.storms
    storming = storms is not None and storms.requests
    classes = "sd-lat-row" + (" sd-slow" if row.slow else "") + (" sd-storm" if storming else "")
    name = _text(row.name)
    detail = (
        f' hx-get="{receiver_url}?label={quote(row.name, safe="/")}" '
        'hx-target="#sd-receiver-detail"'
        if by_receiver
        else ""
    )
    cells = [
        f'<td title="{_text(row.location)}">{name}</td>',
        f'<td class="sd-num">{_number(summary["count"])}</td>',
        f'<td class="sd-num">{_number(summary["errors"])}</td>',
        f'<td class="sd-num">{ms(summary["mean_ns"])}</td>',
        f'<td class="sd-num">{ms(summary["p50_ns"])}</td>',
        f'<td class="sd-num sd-p95">{ms(summary["p95_ns"])}</td>',
        f'<td class="sd-num">{ms(summary["p99_ns"])}</td>',
        f'<td class="sd-num">{ms(summary["max_ns"])}</td>',
        f"<td>{sparkline(row.histogram)}</td>",
    ]
    if by_receiver:
        storm = ""
        if storms is not None and storms.requests:
            storm = (
                '<span class="sd-tag sd-storm-tag" title="ran more than '
                f'{storm_threshold} times inside one request">storm</span> '
                f"{_number(storms.requests)}{_TIMES} · up to {_number(storms.max_calls)} calls"
            )
        cells.append(f"<td>{storm}</td>")
    return f'\n    <tr class="{classes}" data-name="{name}"{detail}>{"".join(cells)}</tr>'


def sparkline(histogram: Histogram) -> str:
    """A small SVG bar chart of a latency histogram: log(duration) across, count up."""
    counts = histogram.shape(SPARKLINE_BINS)
    if not counts:
        return ""
    tallest = max(counts)
    step = SPARKLINE_WIDTH / len(counts)
    bars = []
    for index, count in enumerate(counts):
        if not count:
            continue
        height = max(1.0, SPARKLINE_HEIGHT * count / tallest)
        bars.append(
            f'<rect x="{index * step:.1f}" y="{SPARKLINE_HEIGHT - height:.1f}" '
            f'width="{step - 1:.1f}" height="{height:.1f}"><title>{count}</title></rect>'
        )
    title = f"{histogram.min_ns / 1e6:.3f} ms to {histogram.max_ns / 1e6:.3f} ms, log scale"
    return (
        f'<svg class="sd-spark" width="{SPARKLINE_WIDTH}" height="{SPARKLINE_HEIGHT}" '
        f'viewBox="0 0 {SPARKLINE_WIDTH} {SPARKLINE_HEIGHT}" role="img">'
        f"<title>{title}</title>{''.join(bars)}</svg>"
    )


def request_table_html(context: Mapping[str, Any], oob: bool = False) -> str:
    """The list of finished requests and commands of ``queries.tables_context()``."""
    swap = ' hx-swap-oob="outerHTML"' if oob else ""
    return (
        f'<table id="sd-requests" class="sd-requests"{swap}>\n'
        "  <thead>\n"
        "    <tr><th>Request or command</th><th>Status</th><th>Duration</th><th>Signals</th>\n"
        "      <th>In receivers</th><th>Share</th><th>Slowest receiver</th><th>Storms</th></tr>\n"
        "  </thead>\n"
        f'  <tbody id="sd-request-rows">{request_rows_html(context["request_rows"])}</tbody>\n'
        "</table>"
    )


def request_rows_html(summaries: Sequence[Mapping[str, Any]]) -> str:
    """A row per request summary (see ``queries.request_summary()``)."""
    if not summaries:
        return (
            '<tr><td colspan="8" class="sd-muted">No request or command has finished yet.</td></tr>'
        )
    before, after = url_parts("signal_dashboard:request")
    return "".join(_request_row(summary, before, after) for summary in summaries)


def _request_row(r: Mapping[str, Any], url_before: str, url_after: str) -> str:
    kind, status, error = r["kind"], r["status"], r["error"]
    failed = bool(error) or (status is not None and status >= 500)
    classes = "sd-req-row" + (" sd-storm" if r["storms"] else "") + (" sd-failed" if failed else "")
    what = _text(origin_label(r))
    if kind == "request":
        outcome = "" if status is None else _text(status)
    else:
        outcome = f'<span class="sd-error-text">{_text(error)}</span>' if error else "ok"
    slowest = r["slowest_receiver"]
    slowest_cell = (
        f'{_text(short_label(slowest))} <span class="sd-muted">{ms(r["slowest_receiver_ns"])}'
        "</span>"
        if slowest
        else ""
    )
    storms = ", ".join(
        f'<span class="sd-tag sd-storm-tag">storm</span> {_text(short_label(storm["receiver"]))} '
        f"{_TIMES}{_number(storm['calls'])}"
        for storm in r["storms"]
    )
    return (
        f'<tr class="{classes}" data-id="{_text(r["id"])}" data-kind="{_text(kind)}" '
        f'hx-get="{url_before}{_text(r["id"])}{url_after}" hx-target="#sd-request-detail">\n'
        f"  <td>{what}</td>\n"
        f"  <td>{outcome}</td>\n"
        f'  <td class="sd-num">{ms(r["duration_ns"])}</td>\n'
        f'  <td class="sd-num">{_number(r["signal_count"])}</td>\n'
        f'  <td class="sd-num">{ms(r["receiver_ns"])}</td>\n'
        f'  <td class="sd-num">{percent(r["receiver_share"])}</td>\n'
        f"  <td>{slowest_cell}</td>\n"
        f"  <td>{storms}</td>\n"
        "</tr>"
    )
