"""The dashboard's WebSocket: a live, filtered stream of signal events as HTML fragments.

Every socket of the process shares the rendered rows and tables (fragments.py).

Messages from the page are JSON objects sent by htmx's ws extension (form values plus a
``HEADERS`` object) with an ``action``: ``filter``, ``hide`` (a ``field``, hide_signals,
hide_senders or hide_receivers, and a ``label`` added to it), ``pause``, ``resume``, ``clear``
or ``table`` (the latency table's ``group``, ``span``, ``sort`` and ``order``). A filter or
table query the server accepts comes back as the page's state (``_state.html``), from which the
page sets its URL and links; one it rejects comes back as an error naming what stays in effect.
Everything sent back is HTML that htmx swaps in by element id. Besides the stream's rows, the
latency table and the request list are pushed again whenever they changed, at most every
``TABLES_INTERVAL`` (less often when they take long to make, see ``TABLES_SHARE``).

Every message changes the socket's state at once, in the order they come. The re-renders that
filter and table messages ask for come at most once per ``RERENDER_INTERVAL``, under the newest
state: of a burst of filters (as a person types) only the newest is rendered.

However many dashboards are open, the process renders each row once (:class:`RowFragments`)
and the tables once per filter, table query and version of the data (:class:`SharedTables`);
a socket only renders its own status line around them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from ..backends import backend
from ..backends.base import TransportDown
from ..capture.context import suspended
from ..capture.events import Row
from ..conf import get_config
from ..record.broadcast import STATUS_INTERVAL
from ..record.filters import EventFilter, FilterError
from ..record.recorder import recorder
from ..record.stats.table import TableQuery
from . import fragments
from .access import can_view
from .fragments import TABLES_INTERVAL, Version, row_key
from .reading import page_state, recent_rows
from .rows import push_html

logger = logging.getLogger("signal_dashboard")

FORBIDDEN = 4403
TRANSPORT_DOWN = 4503
# A process not heard from for this long no longer counts towards the events-per-second figure.
SOURCE_SILENCE = 5.0
MAX_MESSAGE_BYTES = 16 * 1024
# Daphne's limit on one WebSocket message: a larger push would close the socket (1011).
MAX_PUSH_BYTES = 1024 * 1024
# Rows per message are cut to this size; the rest of the message is the status line and new
# senders, bounded by the labels' length (a row is at most a few kilobytes, for the same reason).
MAX_ROWS_BYTES = MAX_PUSH_BYTES // 2
ACTIONS = ("filter", "hide", "pause", "resume", "clear", "table")
# A socket re-renders its stream for a new filter, or its tables for a new table query, at most
# once per this many seconds after the last re-render ended (the page's filter form already waits
# for typing to pause); what is asked meanwhile waits, and only the newest is rendered.
RERENDER_INTERVAL = 0.25
# Keys htmx's ws extension adds to every message besides the form's fields.
_ENVELOPE_KEYS = frozenset({"HEADERS", "action"})
_TABLE_KEYS = _ENVELOPE_KEYS | frozenset(TableQuery.PARAMS)


class DashboardConsumer(AsyncWebsocketConsumer):
    """One open dashboard: its filter, pause state and what it has been sent."""

    # No channel of its own: batches are handed over directly, by this process's broadcaster or
    # relay (a layer that is not configured is None to channels).
    channel_layer_alias = None  # type: ignore[assignment]

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Signals sent while serving a dashboard (its user lookup, say) would feed the
        # dashboard itself; they are not traced.
        with suspended():
            await super().dispatch(message)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        config = get_config()
        self.joined = False
        self.max_rows: int = config["MAX_ROWS"]
        self.held: deque[Mapping[str, Any]] = deque(maxlen=config["MAX_HELD_EVENTS"])
        self.paused = False
        self.dropped = 0  # rows this socket missed: held-back overflow and channel-layer gaps
        # Per sending process: the running number of the next row we expect, and its figures.
        self.next_row: dict[str, int] = {}
        self.sources: dict[str, dict[str, float]] = {}
        self.cleared_at = 0.0
        # The rows of the last replacement of the stream: a batch may bring some of them again
        # (they reached the recorder before it was read, and the broadcaster after).
        self.replaced_keys: set[tuple[str, str | None]] = set()
        self.senders_sent: set[str] = set()
        self.table = TableQuery()
        self.tables_sent_at = 0.0
        self.pushed_at = 0.0
        self.tables_version: Version | None = None
        self.tables_refresh: asyncio.Task[None] | None = None
        self.rerender: asyncio.Task[None] | None = None
        self.rerendered_at = -math.inf
        self.stream_stale = False
        self.tables_stale = False
        self.filter = EventFilter()
        self.filter_error = ""
        self.backend = backend()

    async def connect(self) -> None:
        if not await sync_to_async(can_view)(self.scope.get("user")):
            # Accepted first so the page sees the 4403 code (a refused handshake has none).
            await self.accept()
            await self.close(code=FORBIDDEN)
            return
        query = dict(parse_qsl(self.scope.get("query_string", b"").decode("latin-1")))
        try:
            self.filter = EventFilter.parse(query, ignore=TableQuery.PARAMS)
        except FilterError as error:
            self.filter_error = str(error)
        try:
            self.table = TableQuery.parse(query)
        except ValueError as error:
            self.filter_error = self.filter_error or str(error)
        # Join before accepting, so nothing sent after the page sees the socket open is missed.
        try:
            await self.backend.attach(self.deliver)
        except TransportDown as error:
            await self.accept()
            await self.close_transport_down(str(error))
            return
        self.joined = True
        await self.accept()
        if self.filter_error:
            await self.send_error(self.filter_error)

    async def disconnect(self, code: int) -> None:
        if self.joined:
            self.joined = False
            self._stop_tables_refresh()
            self._stop_rerender()
            await self.backend.detach(self.deliver)

    # -- from the page ----------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self.send_error("Send text frames holding a JSON object.")
            return
        if len(text_data.encode()) > MAX_MESSAGE_BYTES:
            await self.send_error(f"Message too large (the limit is {MAX_MESSAGE_BYTES} bytes).")
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            await self.send_error("Malformed message: not JSON.")
            return
        if not isinstance(message, dict):
            await self.send_error("Malformed message: expected a JSON object.")
            return
        action = message.get("action")
        if action not in ACTIONS:
            await self.send_error(
                f"Unknown action {str(action)[:40]!r}; expected one of {', '.join(ACTIONS)}."
            )
            return
        await getattr(self, f"action_{action}")(message)

    async def action_filter(self, message: dict[str, Any]) -> None:
        try:
            self.filter = EventFilter.parse(message, ignore=_ENVELOPE_KEYS)
        except FilterError as error:
            await self.send_rejection(str(error))
            return
        self._rerender_soon(stream=True)

    async def action_hide(self, message: dict[str, Any]) -> None:
        """Hide a signal, sender or receiver: the page filter gains it (and the URL with it)."""
        try:
            self.filter = self.filter.with_hidden(
                str(message.get("field"))[:40],
                message.get("label"),  # type: ignore[arg-type]
            )
        except FilterError as error:
            await self.send_rejection(str(error))
            return
        self._rerender_soon(stream=True)

    async def action_table(self, message: dict[str, Any]) -> None:
        """Regroup, re-sort or change the span of the latency table; the same sort column
        again reverses the order."""
        unknown = sorted(str(key)[:40] for key in message if key not in _TABLE_KEYS)
        if unknown:
            await self.send_error(
                f"Unknown table field(s): {', '.join(unknown[:5])}. "
                f"Known: {', '.join(TableQuery.PARAMS)}."
            )
            return
        current = self.table.to_query()
        wanted = {key: message[key] for key in TableQuery.PARAMS if message.get(key) is not None}
        if "sort" in wanted and "order" not in wanted:
            if wanted["sort"] == self.table.sort:
                wanted["order"] = "asc" if self.table.descending else "desc"
            else:
                current.pop("order")  # the new column's own default
        try:
            self.table = TableQuery.parse({**current, **wanted})
        except ValueError as error:
            await self.send_rejection(str(error))
            return
        self._rerender_soon(stream=False)

    async def action_pause(self, message: dict[str, Any]) -> None:
        self.paused = True
        await self.push([])

    async def action_resume(self, message: dict[str, Any]) -> None:
        self.paused = False
        rows = list(reversed(self.held))
        self.held.clear()
        await self.push(rows)

    async def action_clear(self, message: dict[str, Any]) -> None:
        self.cleared_at = max((event.timestamp for event in list(recorder.events)), default=0.0)
        self.held.clear()
        await self.push([], replace=True)
        await self.send(text_data=render_to_string("signal_dashboard/_cleared.html"))

    def _rerender_soon(self, *, stream: bool) -> None:
        """Re-render the stream and the tables (``stream``), or the tables alone, under the
        state as it is then: now, or ``RERENDER_INTERVAL`` after the last re-render ended."""
        self.stream_stale = self.stream_stale or stream
        self.tables_stale = True
        if self.rerender is None or self.rerender.done():
            self.rerender = asyncio.ensure_future(self._rerender())

    async def _rerender(self) -> None:
        """The re-renders asked for, one after the other, until none is."""
        try:
            while self.tables_stale:  # every re-render includes the tables
                wait = self.rerendered_at + RERENDER_INTERVAL - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if self.stream_stale:
                    await self._replace_rows()
                self.tables_stale = False
                await self.push_tables()
                await self.send(
                    text_data=render_to_string(
                        "signal_dashboard/_state.html", page_state(self.filter, self.table)
                    )
                )
                self.rerendered_at = time.monotonic()
        except Exception:
            logger.exception("signal_dashboard could not re-render a dashboard")

    def _stop_rerender(self) -> None:
        if self.rerender is not None:
            self.rerender.cancel()
            self.rerender = None

    async def _replace_rows(self) -> None:
        """The stream's rows replaced by those of the recent events the filter matches."""
        rows = await sync_to_async(recent_rows, thread_sensitive=False)()
        # What came meanwhile (another filter, a clear) is rendered here, under the newest state.
        self.stream_stale = False
        matching = [
            row for row in rows if row["timestamp"] > self.cleared_at and self.filter.matches(row)
        ]
        self.held.clear()
        matching = matching[: self.max_rows]
        self.replaced_keys = {row_key(row) for row in matching}
        await self.push(matching, replace=True)

    # -- from the broadcaster ---------------------------------------------------------------

    async def deliver(self, batch: Mapping[str, Any]) -> None:
        """A batch handed over directly by this process's broadcaster (see broadcast.py) or,
        with the Redis transport, its relay (see backends/redis/relay.py)."""
        if not self.joined:  # it left while the batch went round the others
            return
        with suspended():
            # As channels dispatches: "signal.batch" to signal_batch(), and so on.
            await getattr(self, get_handler_name(batch))(batch)

    async def transport_down(self, message: Mapping[str, Any]) -> None:
        """The relay has let go of this socket: Redis cannot be read."""
        self.joined = False
        self._stop_tables_refresh()
        self._stop_rerender()
        await self.close_transport_down(message["error"])

    async def close_transport_down(self, error: str) -> None:
        """Say why and close: the page reconnects, and the socket joins again."""
        await self.send_error(f"The event transport is down ({error}); retrying.")
        await self.close(code=TRANSPORT_DOWN)

    async def signal_batch(self, message: Mapping[str, Any]) -> None:
        """A batch of rows from one process's recorder, oldest first."""
        rows: Sequence[Row] = message["rows"]
        source = message.get("source", "")
        expected = self.next_row.get(source)
        if expected is not None and message["first"] > expected:
            self.dropped += message["first"] - expected  # the channel layer lost a batch
        self.next_row[source] = message["first"] + len(rows)
        self.sources[source] = {
            "rate": message["rate"],
            "dropped": message["dropped"],
            "seen": time.monotonic(),
        }
        if self.paused:
            for row in rows:
                if self._shows(row):
                    if len(self.held) == self.held.maxlen:
                        self.dropped += 1
                    self.held.append(row)
            await self.push([])
            return
        await self.push(self._newest_matching(rows))
        self._refresh_tables_if_due()

    async def dashboard_tick(self, message: Mapping[str, Any]) -> None:
        """With the Redis transport, every ``STATUS_INTERVAL`` whether or not any process sends
        events: the status line if no batch brought it since, and the tables if they are due
        (other processes' statistics reach Redis after their events)."""
        if time.monotonic() - self.pushed_at >= STATUS_INTERVAL:
            await self.push([])
        self._refresh_tables_if_due()

    def _refresh_tables_if_due(self) -> None:
        due = time.monotonic() - self.tables_sent_at >= TABLES_INTERVAL
        if due and (self.tables_refresh is None or self.tables_refresh.done()):
            # In a task of its own: reading the statistics may wait on Redis, and the batches
            # of this socket (and, in-process, of every socket) must not wait with it.
            self.tables_refresh = asyncio.ensure_future(self._refresh_tables())

    def _shows(self, row: Row) -> bool:
        """Whether a row of a batch goes on the page: the filter admits it, and the last
        replacement of the stream did not show it already."""
        return self.filter.matches(row) and not (
            self.replaced_keys and row_key(row) in self.replaced_keys
        )

    def _newest_matching(self, rows: Sequence[Row]) -> list[Row]:
        """Newest first, as many as the page keeps: older ones would scroll off at once."""
        matching: list[Row] = []
        for row in reversed(rows):
            if self._shows(row):
                matching.append(row)
                if len(matching) == self.max_rows:
                    break
        return matching

    # -- to the page ------------------------------------------------------------------------

    async def push(self, rows: Sequence[Row], replace: bool = False) -> None:
        """Send the newest ``max_rows`` of ``rows`` (newest first) with the status line and any
        senders not seen yet: in one message, or in several if one would be too large."""
        self.pushed_at = time.monotonic()
        rows = rows[: self.max_rows]
        rendered = fragments.row_fragments.render(rows)
        status = self.status()
        # Oldest part first: each message's rows go above the ones already shown.
        for part, part_fragments in reversed(_parts(rows, rendered)):
            new_senders = sorted({row["sender"] for row in part} - self.senders_sent)
            self.senders_sent.update(new_senders)
            html = push_html(
                rows_html="".join(part_fragments),  # escaped by row_html()
                replace=replace,
                rate=status["rate"],
                dropped=status["dropped"],
                transport=status["transport"],
                paused=self.paused,
                held=len(self.held),
                new_senders=new_senders,
                recording=status["recording"],
            )
            replace = False
            await self.send(text_data=html)

    def status(self) -> dict[str, Any]:
        """Events per second and drops over every process heard from, and the transport."""
        now = time.monotonic()
        recent = [s for s in self.sources.values() if now - s["seen"] < SOURCE_SILENCE]
        transport = self.backend.status()
        return {
            "rate": sum(s["rate"] for s in recent),
            "dropped": sum(int(s["dropped"]) for s in self.sources.values()) + self.dropped,
            "transport": transport,
            "recording": self.backend.recording(),
        }

    async def push_tables(self) -> None:
        """The latency table (under this page's filter) and the request list, as they are now."""
        self._stop_tables_refresh()  # it would send the tables of the query before this one
        await self._send_tables(*await fragments.shared_tables.get(self.filter, self.table))

    async def _refresh_tables(self) -> None:
        """Push the tables again if they changed since this socket was last sent them."""
        try:
            version, html = await fragments.shared_tables.get(self.filter, self.table)
            if version != self.tables_version:
                await self._send_tables(version, html)
        except Exception:
            logger.exception("signal_dashboard could not push the latency table")

    async def _send_tables(self, version: Version, html: str) -> None:
        self.tables_version = version
        self.tables_sent_at = time.monotonic()
        await self.send(text_data=html)

    def _stop_tables_refresh(self) -> None:
        if self.tables_refresh is not None:
            self.tables_refresh.cancel()
            self.tables_refresh = None

    async def send_rejection(self, reason: str) -> None:
        """A filter or table query refused: why, and what the page still shows."""
        table = ", ".join(f"{key}={value}" for key, value in self.table.changed_query().items())
        await self.send_error(
            f"{reason} Still in effect: {self.filter.describe()}"
            + (f"; latency table {table}" if table else "")
            + "."
        )

    async def send_error(self, text: str) -> None:
        html = render_to_string("signal_dashboard/_error.html", {"error": text})
        await self.send(text_data=html)


def _parts(
    rows: Sequence[Row], fragments: list[str]
) -> list[tuple[Sequence[Mapping[str, Any]], list[str]]]:
    """Rows cut into runs whose HTML fits one message beside the status line (at least one
    run, and at least one row in each)."""
    parts: list[tuple[Sequence[Mapping[str, Any]], list[str]]] = []
    start, size = 0, 0
    for index, fragment in enumerate(fragments):
        length = len(fragment.encode())
        if index > start and size + length > MAX_ROWS_BYTES:
            parts.append((rows[start:index], fragments[start:index]))
            start, size = index, 0
        size += length
    parts.append((rows[start:], fragments[start:]))
    return parts
