"""What every dashboard socket of the process shares: each row's HTML and the tables, rendered
once however many sockets show them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable, Sequence
from typing import Any

from asgiref.sync import sync_to_async

from ..backends import backend
from ..capture.events import Row
from ..conf import get_config
from ..record.filters import EventFilter
from ..record.recorder import recorder
from ..record.stats.table import TableQuery
from .reading import tables_context
from .rows import event_url_parts, row_html
from .tables import tables_html

# Rendered rows kept for the sockets still to show them (and for the next page filter).
ROW_CACHE_SIZE = 2000
# The latency table and the request list are pushed at most this often (seconds).
TABLES_INTERVAL = 1.0
# The share of the process's time making tables may take: tables that take long to make (many
# series, a busy server) are made less often than every TABLES_INTERVAL.
TABLES_SHARE = 0.05
# Tables no socket asked for in this long are forgotten (seconds).
TABLES_KEPT = 60.0

Version = tuple[Hashable, int]
_TablesKey = tuple[EventFilter, TableQuery]


class RowFragments:
    """Each row's HTML, rendered once in this process however many sockets show it.

    Bounded: the oldest fragments go first. Only the event loop's thread uses it.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._html: dict[tuple[str, str | None], str] = {}
        self._config: dict[str, Any] | None = None

    def render(self, rows: Sequence[Row]) -> list[str]:
        """The HTML of each row, in order."""
        config = get_config()
        if config is not self._config:  # SLOW_MS, say, changes how rows look
            self._html.clear()
            self._config = config
        cache = self._html
        fragments = []
        event_url = event_url_parts()
        for row in rows:
            key = row_key(row)
            html = cache.get(key)
            if html is None:
                html = cache[key] = row_html(row, event_url)
            fragments.append(html)
        for _ in range(len(cache) - self.size):
            del cache[next(iter(cache))]
        return fragments


def row_key(row: Row) -> tuple[str, str | None]:
    return row["id"], row.get("history_id")


class SharedTables:
    """The latency table and the request list, made once per page filter, table query and
    version of the data, and shared by every socket that asks within ``TABLES_INTERVAL``.

    They are made on a worker thread: with the Redis transport, reading the statistics may wait
    on Redis, and the event loop serves every socket and request of the process.
    """

    def __init__(self) -> None:
        # (page filter, table query) -> when made, how long they stay, the version made from,
        # the HTML
        self._made: dict[_TablesKey, tuple[float, float, Version, str]] = {}
        self._making: dict[_TablesKey, asyncio.Task[tuple[Version, str]]] = {}

    async def get(self, event_filter: EventFilter, query: TableQuery) -> tuple[Version, str]:
        """The version of the data and the tables' HTML (hx-swap-oob elements)."""
        key = (event_filter, query)
        made = self._made.get(key)
        if made is not None and time.monotonic() - made[0] < made[1]:
            return made[2], made[3]
        making = self._making.get(key)
        # (A task of a loop that has since closed, as between tests, never finishes.)
        if making is None or making.get_loop() is not asyncio.get_running_loop():
            making = self._making[key] = asyncio.ensure_future(self._make(key))
        # A socket that leaves, or asks for another query, must not cancel it for the others.
        return await asyncio.shield(making)

    async def _make(self, key: _TablesKey) -> tuple[Version, str]:
        try:
            made = self._made.get(key)
            previous = None if made is None else made[2:]
            started = time.monotonic()
            version, html = await sync_to_async(_make_tables, thread_sensitive=False)(
                *key, previous
            )
        finally:
            if self._making.get(key) is asyncio.current_task():
                del self._making[key]
        now = time.monotonic()
        for stale in [k for k, (at, *_) in self._made.items() if now - at >= TABLES_KEPT]:
            del self._made[stale]
        self._made[key] = (now, max(TABLES_INTERVAL, (now - started) / TABLES_SHARE), version, html)
        return version, html


def _make_tables(
    event_filter: EventFilter, query: TableQuery, previous: tuple[Version, str] | None
) -> tuple[Version, str]:
    version = _tables_version()
    if previous is not None and previous[0] == version:
        return previous
    context = tables_context(event_filter, query)
    return version, tables_html(context)


def _tables_version() -> Version:
    """Changes whenever the statistics (with the Redis transport, any process's) or the list of
    finished requests do."""
    requests = recorder.requests
    return (backend().latency_store().fingerprint(), requests[-1].id if requests else 0)


row_fragments = RowFragments(ROW_CACHE_SIZE)
shared_tables = SharedTables()
