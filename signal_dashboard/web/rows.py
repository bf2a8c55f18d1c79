"""The stream's rows, made in Python, and the pushes that carry them to a socket.

A row is the one piece of markup made for every event a dashboard shows (thousands a second on
a busy stream); ``bench/markup.py`` compares :func:`row_html` with rendering
``templates/signal_dashboard/_row.html``, the same markup, which documents it (a test checks
that both render alike). Every value is escaped as ``{{ }}`` in a template would escape it.
Everything else a push carries is in templates.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from html import escape
from typing import Any
from urllib.parse import quote

from django.template.loader import render_to_string
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.safestring import mark_safe

from .. import conf
from ..capture import tasks
from ..capture.events import Row
from ..capture.labels import last_part, origin_label, short_label
from ..capture.recording import Switch
from ..conf import get_config

# Stands in for an object's id in a reversed URL (an integer fits both str and int converters).
_ID = 999_999_999
_url_parts: dict[tuple[str, Any, str], tuple[str, str]] = {}
# Rows repeat the same few strings (labels, paths, hosts): their escaped forms are kept, up to
# ESCAPED_KEPT strings of at most ESCAPED_LENGTH characters.
_escaped: dict[str, str] = {}
ESCAPED_KEPT = 4096
ESCAPED_LENGTH = 200
# Status lines kept made (see _status_html()).
STATUS_KEPT = 64


def row_html(row: Row, event_url: tuple[str, str] | None = None) -> str:
    """One row of the stream table (see templates/signal_dashboard/_rows.html).

    ``event_url`` is :func:`event_url_parts`, for a caller making many rows at once.
    """
    failed = not row["ok"]
    classes = "sd-row" + (" sd-failed" if failed else "") + (" sd-slow" if is_slow(row) else "")
    if "type" in row:  # a signal-hygiene finding (see hygiene.py)
        classes += " sd-finding"
    signal, sender, history_id = _text(row["signal"]), _text(row["sender"]), row.get("history_id")
    before, after = event_url or event_url_parts()
    url = before + quote(row["id"], safe="!$&'()*+,;=/~:@") + after  # as reverse() quotes
    if history_id:
        url += "?h=" + quote(str(history_id), safe="/")
    slowest = row["slowest_receiver"]
    slowest_cell = (
        f'{breakable(short_label(slowest))} <span class="sd-muted sd-num">'
        f"{ms(row['slowest_receiver_ns'])}</span>"
        if slowest
        else ""
    )
    outcome = "ok" if not failed else f'<span class="sd-error-text">{_text(row["error"])}</span>'
    origin = row["origin"]
    caused_by_title = _text(origin_label(origin))
    caused_by = breakable(origin_label(origin))
    if origin["kind"] == "task":  # its function's path in full in the title
        caused_by = breakable(f"task {short_label(origin['name'])}")
        by = tasks.enqueued_by(origin)
        caused_by_title += f" {_text(origin['task_id'])}" + (
            f", enqueued by {_text(by)}" if by else ""
        )
    if history_id:
        caused_by += (
            f' <span class="sd-muted sd-process">{_text(origin["host"])}:{_text(origin["pid"])}'
            "</span>"
        )
    return (
        # The id and the URL are new in every row: escaped, not kept.
        f'<tr class="{classes}" data-id="{escape(row["id"])}" data-signal="{signal}" '
        f'data-sender="{sender}" data-ok="{"false" if failed else "true"}" '
        f'hx-get="{escape(url)}" hx-target="#sd-detail">\n'
        f'  <td class="sd-time">{clock(row["timestamp"])}</td>\n'
        f'  <td class="sd-name" title="{signal} ({_text(row["method"])})">'
        f"{breakable(last_part(row['signal']))}</td>\n"
        f'  <td class="sd-name" title="{sender}">{breakable(short_label(row["sender"]))}</td>\n'
        f"  <td>{_text(row['receiver_count'])}</td>\n"
        f'  <td class="sd-num">{ms(row["duration_ns"])}</td>\n'
        f'  <td class="sd-name" title="{_text(slowest or "")}">{slowest_cell}</td>\n'
        f'  <td title="{"ok" if not failed else _text(row["error"])}">{outcome}</td>\n'
        f'  <td class="sd-name" title="{caused_by_title}">{caused_by}</td>\n'
        "</tr>"
    )


def is_slow(row: Row) -> bool:
    """Whether a send took at least ``SLOW_MS``."""
    return row["duration_ns"] >= get_config()["SLOW_MS"] * 1_000_000


def push_html(
    *,
    rows_html: str,
    replace: bool,
    rate: float,
    dropped: int,
    transport: Mapping[str, Any],
    paused: bool,
    held: int,
    new_senders: list[str],
    recording: Switch | None = None,
) -> str:
    """One WebSocket push (templates/signal_dashboard/_push.html): rows (``rows_html``,
    already escaped) for the top of the stream table, or to replace it, with the status line
    and senders new to the page's datalist.

    Every element carries an id that htmx swaps in place (hx-swap-oob).
    """
    status = _status_html(
        rate, dropped, tuple(transport.items()), paused, held, recording or Switch()
    )
    return render_to_string(
        "signal_dashboard/_push.html",
        {
            "rows_html": mark_safe(rows_html),
            "replace": replace,
            "status_html": status,
            "new_senders": new_senders,
        },
    )


@functools.lru_cache(maxsize=STATUS_KEPT)
def _status_html(
    rate: float,
    dropped: int,
    transport: tuple[tuple[str, Any], ...],
    paused: bool,
    held: int,
    recording: Switch,
) -> str:
    """The status line (``_status.html``): the same for every socket of a process at a
    moment, so made once for them all."""
    context = {
        "rate": rate,
        "dropped": dropped,
        "transport": dict(transport),
        "paused": paused,
        "held": held,
        "recording": recording,
    }
    return mark_safe(render_to_string("signal_dashboard/_status.html", context))


@conf.on_change
def _forget_status_lines(config: dict[str, Any]) -> None:
    """Status lines made under other number formats are not shown again."""
    _status_html.cache_clear()


def transport_html(transport: Mapping[str, Any]) -> str:
    """The status line's word on the transport (see backends.Backend.status())."""
    return render_to_string("signal_dashboard/_transport.html", {"transport": transport})


def _text(value: Any) -> str:
    """``value`` escaped as ``{{ value }}`` would be."""
    if type(value) is not str or len(value) > ESCAPED_LENGTH:
        return escape(str(value))  # html.escape's chained replaces are the fastest way
    text = _escaped.get(value)
    if text is None:
        if len(_escaped) >= ESCAPED_KEPT:
            _escaped.clear()
        text = _escaped[value] = escape(value)
    return text


# Where an identifier may wrap: after a dot, an underscore, a slash or a colon, and between the
# words of a CamelCase name.
_BREAKS = re.compile(r"(?<=[._/:])|(?<=[a-z])(?=[A-Z])")
_breakable: dict[str, str] = {}


def breakable(label: Any) -> str:
    """``label`` escaped, with ``<wbr>`` where it may wrap: between its parts, never inside a
    word (the ``wrap_dots`` filter)."""
    text = _breakable.get(label) if type(label) is str else None
    if text is None:
        text = _BREAKS.sub("<wbr>", _text(label))
        if type(label) is str and len(label) <= ESCAPED_LENGTH:
            if len(_breakable) >= ESCAPED_KEPT:
                _breakable.clear()
            _breakable[label] = text
    return text


def event_url_parts() -> tuple[str, str]:
    """The event detail URL before and after the event's id."""
    return url_parts("signal_dashboard:event")


def url_parts(name: str) -> tuple[str, str]:
    """The URL of view ``name`` (taking one id) before and after the id, for the current URLconf
    and script prefix (reverse() costs more than the rest of a row)."""
    key = (name, get_urlconf(), get_script_prefix())
    parts = _url_parts.get(key)
    if parts is None:
        before, _, after = reverse(name, args=[_ID]).partition(str(_ID))
        parts = _url_parts[key] = (before, after)
    return parts


def ms(nanoseconds: int | None) -> str:
    """Nanoseconds as milliseconds, e.g. ``12.345 ms``."""
    if nanoseconds is None:
        return ""
    return f"{nanoseconds / 1e6:.3f} ms"


def percent(share: float | None) -> str:
    """A share (0 to 1) as a percentage, e.g. ``42.0%``."""
    if share is None:
        return ""
    return f"{share * 100:.1f}%"


def clock(timestamp: float) -> str:
    """Seconds since the epoch as UTC ``HH:MM:SS.mmm`` (the microsecond truncated, as
    ``strftime("%f")[:-3]`` would; in arithmetic, at a third of datetime's cost)."""
    millis = round(timestamp * 1_000_000) // 1000 % 86_400_000
    seconds, millis = divmod(millis, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"
