"""The Redis backend (``REDIS_URL``): every process's events and statistics, through Redis.

Off by default: events go to dashboards in the same process (backends/local.py). With
``SIGNAL_DASHBOARD["REDIS_URL"]`` set, every process with tracing installed (web workers,
management commands, scripts, task workers) runs a publisher (publisher.py) that every
``FLUSH_INTERVAL`` drains the recorder and

- sends the events recorded since as one batch to the dashboards' group on a channels_redis
  layer, so every open dashboard of every process gets them (a web process reads the group
  once, in its relay: relay.py);
- appends them to a capped Redis stream, the history a newly opened dashboard starts from;
- stores the process's latency statistics and latest requests under keys of its own that
  expire ``STATS_RETENTION`` seconds after the process last wrote them (read back, merged, by
  history.py).

The keys, the layer and the clients all of them share are in connection.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...capture.recording import Switch
from ...conf import get_config
from ..local import LocalBackend
from . import history, publisher, relay
from .connection import channel_layer

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

    from ...record.broadcast import BatchReceiver
    from ...record.filters import EventFilter
    from ...record.stats.store import LatencyStore


class RedisBackend(LocalBackend):
    def recording(self) -> Switch:
        # As the publisher last read it (every process with tracing on runs one); read from
        # Redis in a process without (or this process's, if Redis cannot be read).
        try:
            return publisher.recording_switch()
        except Exception:
            return super().recording()

    def set_recording(self, on: bool, by: str) -> Switch:
        switch = publisher.set_recording_switch(Switch.set(on, by))
        super().set_recording(on, by)  # here at once; the other processes within a second
        return switch

    def recent_rows(self, limit: int) -> list[dict[str, Any]]:
        # Every process's; this process's if Redis cannot be read.
        try:
            return history.recent_rows(limit)
        except Exception:
            return super().recent_rows(limit)

    def recent_events(self, limit: int, event_filter: EventFilter) -> list[dict[str, Any]]:
        # As recent_rows(): every process's; this process's if Redis cannot be read.
        try:
            entries = history.events(limit)
        except Exception:
            return super().recent_events(limit, event_filter)
        return [event for row, event in reversed(entries) if event_filter.matches(row)]

    def other_event(self, history_id: str) -> dict[str, Any] | None:
        return history.event(history_id)

    def other_requests(self) -> list[dict[str, Any]]:
        return history.other_requests()

    def origin_events(
        self, host: str, pid: int, origin_id: int
    ) -> list[tuple[str, dict[str, Any]]]:
        limit = get_config()["HISTORY_SIZE"]
        return [
            (row["history_id"], event)
            for row, event in history.events(limit)
            if (row["origin"].get("host"), row["origin"].get("pid"), row["origin"].get("id"))
            == (host, pid, origin_id)
            and "receivers" in event  # a send, not a finding
        ]

    def latency_store(self) -> LatencyStore:
        return history.merged_latency_store()

    def status(self) -> dict[str, Any]:
        current = publisher.Publisher.current
        error = (current.error if current else "") or history.MergedCache.error
        return {
            "shared": True,
            "up": not error,
            "error": error,
            "dropped": current.dropped if current else 0,
        }

    async def attach(self, receiver: BatchReceiver) -> None:
        await relay.relay.attach(receiver)

    async def detach(self, receiver: BatchReceiver) -> None:
        await relay.relay.detach(receiver)

    def tail_layer(self) -> BaseChannelLayer:
        return channel_layer()
