from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django import template
from django.utils.safestring import mark_safe

from ..capture.labels import last_part, origin_label, short_label
from ..web.rows import breakable, clock, is_slow, ms, percent, row_html
from ..web.tables import request_failed, request_rows_html, sort_headings, sparkline_bars

register = template.Library()


register.filter("ms", ms)
register.filter("clock", clock)
register.filter("short_label", short_label)
register.filter("last_part", last_part)
register.filter("origin_label", origin_label)
register.filter("percent", percent)
register.filter("slow", is_slow)


@register.filter
def row(row: Mapping[str, Any]) -> str:
    """A row of the stream table (escaped inside)."""
    return mark_safe(row_html(row))


@register.filter
def wrap_dots(label: str) -> str:
    """A label, escaped, that may wrap between its parts (``<wbr>``), not inside a word."""
    return mark_safe(breakable(label))


@register.filter
def as_json(value: Any) -> str:
    """A summary (already JSON-ready and redacted) as indented JSON."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@register.filter
def ws_path(url: str) -> str:
    """The path of a WebSocket URL, without its query string or leading slash."""
    return url.partition("?")[0].lstrip("/")


register.filter("sort_headings", sort_headings)
register.filter("sparkline_bars", sparkline_bars)
register.filter("failed", request_failed)


@register.simple_tag
def request_rows(summaries: list[Mapping[str, Any]], filtered: bool = False) -> str:
    """The request list's rows (``_request_row.html`` each), made once per request."""
    return mark_safe(request_rows_html(summaries, filtered))
