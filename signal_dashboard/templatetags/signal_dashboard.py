from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from ..conf import get_config
from ..rows import clock, ms, row_html, short_label, transport_html
from ..stats import Histogram, TableQuery

register = template.Library()


register.filter("ms", ms)
register.filter("clock", clock)
register.filter("short_label", short_label)


@register.filter
def row(row: Mapping[str, Any]) -> str:
    """A row of the stream table (escaped inside)."""
    return mark_safe(row_html(row))


@register.filter
def transport(status: Mapping[str, Any]) -> str:
    """The status line's word on the transport (see transport.transport_status())."""
    return mark_safe(transport_html(status))


@register.filter
def is_slow(row: dict[str, Any]) -> bool:
    return row["duration_ns"] >= get_config()["SLOW_MS"] * 1_000_000


@register.filter
def as_json(value: Any) -> str:
    """A summary (already JSON-ready and redacted) as indented JSON."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@register.filter
def ws_path(url: str) -> str:
    """The path of a WebSocket URL, without its query string or leading slash."""
    return url.partition("?")[0].lstrip("/")


SPARKLINE_WIDTH = 96
SPARKLINE_HEIGHT = 20
SPARKLINE_BINS = 24


@register.filter
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
    return format_html(
        '<svg class="sd-spark" width="{}" height="{}" viewBox="0 0 {} {}" role="img">'
        "<title>{}</title>{}</svg>",
        SPARKLINE_WIDTH,
        SPARKLINE_HEIGHT,
        SPARKLINE_WIDTH,
        SPARKLINE_HEIGHT,
        title,
        mark_safe("".join(bars)),  # numbers only, made here
    )


@register.filter
def percent(share: float | None) -> str:
    """A share (0 to 1) as a percentage, e.g. ``42.0%``."""
    if share is None:
        return ""
    return f"{share * 100:.1f}%"


@register.filter
def sort_arrow(table: TableQuery, column: str) -> str:
    """▼ or ▲ beside the column the table is sorted by."""
    if table.sort != column:
        return ""
    return "▼" if table.descending else "▲"
