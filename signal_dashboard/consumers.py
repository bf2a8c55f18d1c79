"""The dashboard's WebSocket: a live, filtered stream of signal events as HTML fragments.

Messages from the page are JSON objects sent by htmx's ws extension (form values plus a
``HEADERS`` object) with an ``action``: ``filter``, ``pause``, ``resume``, ``clear`` or
``table`` (the latency table's ``group``, ``span``, ``sort`` and ``order``). Everything sent
back is HTML that htmx swaps in by element id. Besides the stream's rows, the latency table and
the request list are pushed again whenever they changed, at most every ``TABLES_INTERVAL``.
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qsl

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from .access import can_view
from .broadcast import GROUP, broadcaster
from .conf import get_config
from .context import suspended
from .filters import EventFilter, FilterError
from .recorder import recorder
from .stats import TableQuery
from .transport import is_shared, layer_alias, transport_status
from .views import recent_rows, tables_context

FORBIDDEN = 4403
TRANSPORT_DOWN = 4503
# A process not heard from for this long no longer counts towards the events-per-second figure.
SOURCE_SILENCE = 5.0
MAX_MESSAGE_BYTES = 16 * 1024
ACTIONS = ("filter", "pause", "resume", "clear", "table")
# The latency table and the request list are pushed at most this often (seconds).
TABLES_INTERVAL = 1.0
# Keys htmx's ws extension adds to every message besides the form's fields.
_ENVELOPE_KEYS = frozenset({"HEADERS", "action"})
_TABLE_KEYS = _ENVELOPE_KEYS | frozenset(TableQuery.PARAMS)


class DashboardConsumer(AsyncWebsocketConsumer):
    """One open dashboard: its filter, pause state and what it has been sent."""

    @property  # type: ignore[override]
    def channel_layer_alias(self) -> str:
        """With the Redis transport, the layer every process publishes to."""
        return layer_alias()

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Signals sent while serving a dashboard (its user lookup, say) would feed the
        # dashboard itself; they are not traced.
        with suspended():
            await super().dispatch(message)

    async def connect(self) -> None:
        if not await sync_to_async(can_view)(self.scope.get("user")):
            # Accepted first so the page sees the 4403 code (a refused handshake has none).
            await self.accept()
            await self.close(code=FORBIDDEN)
            return
        config = get_config()
        self.max_rows: int = config["MAX_ROWS"]
        self.held: deque[dict[str, Any]] = deque(maxlen=config["MAX_HELD_EVENTS"])
        self.paused = False
        self.dropped = 0  # rows this socket missed: held-back overflow and channel-layer gaps
        # Per sending process: the running number of the next row we expect, and its figures.
        self.next_row: dict[str, int] = {}
        self.sources: dict[str, dict[str, float]] = {}
        self.cleared_at = 0.0
        self.senders_sent: set[str] = set()
        self.table = TableQuery()
        self.tables_sent_at = 0.0
        self.tables_version: tuple[int, int] | None = None
        query = dict(parse_qsl(self.scope.get("query_string", b"").decode("latin-1")))
        self.filter_error = ""
        try:
            self.filter = EventFilter.parse(query)
        except FilterError as error:
            self.filter, self.filter_error = EventFilter(), str(error)
        # Join before accepting, so nothing sent after the page sees the socket open is missed.
        try:
            await self.channel_layer.group_add(GROUP, self.channel_name)
        except Exception as error:  # the Redis transport is down
            await self.accept()
            await self.send_error(f"The event transport is down ({error}); retrying.")
            await self.close(code=TRANSPORT_DOWN)
            return
        if not is_shared():
            broadcaster.attach()
        self.joined = True
        await self.accept()
        if self.filter_error:
            await self.send_error(self.filter_error)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "joined", False):
            self.joined = False
            if not is_shared():
                broadcaster.detach()
            await self.channel_layer.group_discard(GROUP, self.channel_name)

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
            await self.send_error(str(error))
            return
        rows = [
            row
            for row in await sync_to_async(recent_rows, thread_sensitive=False)()
            if row["timestamp"] > self.cleared_at and self.filter.matches(row)
        ][: self.max_rows]
        self.held.clear()
        await self.push(rows, replace=True)
        await self.push_tables()

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
            await self.send_error(str(error))
            return
        await self.push_tables()

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

    # -- from the broadcaster ---------------------------------------------------------------

    async def signal_batch(self, message: dict[str, Any]) -> None:
        """A batch of rows from one process's recorder, oldest first."""
        rows = message["rows"]
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
        matching = [row for row in rows if self.filter.matches(row)]
        if self.paused:
            for row in matching:
                if len(self.held) == self.held.maxlen:
                    self.dropped += 1
                self.held.append(row)
            await self.push([])
            return
        await self.push(matching[::-1])
        due = time.monotonic() - self.tables_sent_at >= TABLES_INTERVAL
        if due and self.tables_version != _tables_version():
            await self.push_tables()

    # -- to the page ------------------------------------------------------------------------

    async def push(self, rows: list[dict[str, Any]], replace: bool = False) -> None:
        """Send rows (newest first) with the status line and any senders not seen yet."""
        new_senders = sorted({row["sender"] for row in rows} - self.senders_sent)
        self.senders_sent.update(new_senders)
        status = self.status()
        html = render_to_string(
            "signal_dashboard/_push.html",
            {
                "rows": rows,
                "replace": replace,
                "new_senders": new_senders,
                "rate": status["rate"],
                "dropped": status["dropped"],
                "transport": status["transport"],
                "paused": self.paused,
                "held": len(self.held),
                "filter": self.filter,
            },
        )
        await self.send(text_data=html)

    def status(self) -> dict[str, Any]:
        """Events per second and drops over every process heard from, and the transport."""
        now = time.monotonic()
        recent = [s for s in self.sources.values() if now - s["seen"] < SOURCE_SILENCE]
        transport = transport_status()
        return {
            "rate": sum(s["rate"] for s in recent),
            "dropped": sum(int(s["dropped"]) for s in self.sources.values()) + self.dropped,
            "transport": transport,
        }

    async def push_tables(self) -> None:
        """The latency table (under this page's filter) and the request list."""
        self.tables_version = _tables_version()
        self.tables_sent_at = time.monotonic()
        html = render_to_string(
            "signal_dashboard/_tables.html", tables_context(self.filter, self.table)
        )
        await self.send(text_data=html)

    async def send_error(self, text: str) -> None:
        html = render_to_string("signal_dashboard/_error.html", {"error": text})
        await self.send(text_data=html)


def _tables_version() -> tuple[int, int]:
    """Changes whenever the statistics or the list of finished requests do."""
    requests = recorder.requests
    return (recorder.latency.version, requests[-1].id if requests else 0)
