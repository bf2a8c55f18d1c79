from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django import template
from django.template import Context
from django.utils.safestring import mark_safe

from .. import tables
from ..labels import origin_label, short_label
from ..rows import clock, ms, percent, row_html, transport_html
from ..stats.histogram import Histogram

register = template.Library()


register.filter("ms", ms)
register.filter("clock", clock)
register.filter("short_label", short_label)
register.filter("origin_label", origin_label)
register.filter("percent", percent)


@register.filter
def row(row: Mapping[str, Any]) -> str:
    """A row of the stream table (escaped inside)."""
    return mark_safe(row_html(row))


@register.filter
def transport(status: Mapping[str, Any]) -> str:
    """The status line's word on the transport (see backends.Backend.status())."""
    return mark_safe(transport_html(status))


@register.filter
def as_json(value: Any) -> str:
    """A summary (already JSON-ready and redacted) as indented JSON."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@register.filter
def ws_path(url: str) -> str:
    """The path of a WebSocket URL, without its query string or leading slash."""
    return url.partition("?")[0].lstrip("/")


@register.filter
def sparkline(histogram: Histogram) -> str:
    """A small SVG bar chart of a latency histogram (numbers only, made in Python)."""
    return mark_safe(tables.sparkline(histogram))


@register.simple_tag(takes_context=True)
def latency_table(context: Context) -> str:
    """The latency table of ``queries.tables_context()`` (escaped inside)."""
    return mark_safe(tables.latency_table_html(context.flatten()))


@register.simple_tag(takes_context=True)
def request_table(context: Context) -> str:
    """The list of finished requests of ``queries.tables_context()`` (escaped inside)."""
    return mark_safe(tables.request_table_html(context.flatten()))
