"""The read side: what pages, sockets and exports show, whichever transport the events came
through: the recent rows, the latency table with the request list, and a request's summary."""

from __future__ import annotations

from typing import Any

from .backends import backend
from .conf import get_config
from .context import Origin
from .filters import EventFilter
from .labels import receiver_label
from .recorder import recorder
from .stats.table import TableQuery

# Rows of the latency table and of the request list a page or a socket shows.
MAX_TABLE_ROWS = 100
MAX_REQUEST_ROWS = 50


def tables_context(event_filter: EventFilter, query: TableQuery) -> dict[str, Any]:
    """What the latency table and the request list show, for a page or a socket push."""
    config = get_config()
    events = list(recorder.events) if event_filter.needs_events else []
    store = backend().latency_store()
    rows = store.table(query, event_filter, events, slow_ns=config["SLOW_MS"] * 1_000_000)
    return {
        "latency_rows": rows[:MAX_TABLE_ROWS],
        "latency_total": len(rows),
        "table": query,
        "window_seconds": store.window_seconds,
        "from_buffer": event_filter.needs_events,
        "unreadable": len(store.unreadable),
        "request_rows": [
            request_summary(origin) for origin in list(recorder.requests)[-MAX_REQUEST_ROWS:][::-1]
        ],
        "storm_threshold": store.storm_threshold,
        "slow_ms": config["SLOW_MS"],
    }


def recent_rows() -> list[dict[str, Any]]:
    """Rows of the recent events, newest first: every process's with the Redis backend (this
    process's if Redis cannot be read), else this process's."""
    return backend().recent_rows(get_config()["HISTORY_SIZE"])


def request_summary(origin: Origin) -> dict[str, Any]:
    """A finished request (or command) as JSON-ready data."""
    slowest = origin.slowest_receiver_key
    duration = origin.duration_ns
    return {
        **origin.as_dict(),
        "id": origin.id,
        "status": origin.status,
        "error": origin.error,
        "duration_ns": duration,
        "signal_count": origin.signal_count,
        "receiver_ns": origin.receiver_ns,
        # The share of the request spent in receivers of the sends it made.
        "receiver_share": origin.receiver_ns / duration if duration else 0.0,
        "slowest_receiver": None if slowest is None else receiver_label(slowest)[0],
        "slowest_receiver_ns": origin.slowest_receiver_ns,
        "storms": [{"receiver": label, "calls": calls} for label, calls in origin.storms],
    }
