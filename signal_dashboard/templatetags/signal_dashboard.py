from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django import template

from ..conf import get_config

register = template.Library()


@register.filter
def ms(nanoseconds: int | None) -> str:
    """Nanoseconds as milliseconds, e.g. ``12.345 ms``."""
    if nanoseconds is None:
        return ""
    return f"{nanoseconds / 1e6:.3f} ms"


@register.filter
def clock(timestamp: float) -> str:
    """Seconds since the epoch as UTC ``HH:MM:SS.mmm``."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%H:%M:%S.%f")[:-3]


@register.filter
def short_label(label: str | None) -> str:
    """The last two parts of a dotted label: ``signals.post_save``, ``receivers.on_save``."""
    if not label:
        return ""
    return ".".join(label.rsplit(".", 2)[-2:])


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
