"""The Redis backend (``REDIS_URL``): every process's events and statistics, through Redis (the
machinery is in signal_dashboard.transport)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import transport
from ..conf import get_config
from ..recording import Switch
from .local import LocalBackend

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

    from ..broadcast import BatchReceiver
    from ..filters import EventFilter
    from ..stats.store import LatencyStore


class RedisBackend(LocalBackend):
    def recording(self) -> Switch:
        # As the publisher last read it (every process with tracing on runs one); read from
        # Redis in a process without (or this process's, if Redis cannot be read).
        try:
            return transport.recording_switch()
        except Exception:
            return super().recording()

    def set_recording(self, on: bool, by: str) -> Switch:
        switch = transport.set_recording_switch(Switch.set(on, by))
        super().set_recording(on, by)  # here at once; the other processes within a second
        return switch

    def recent_rows(self, limit: int) -> list[dict[str, Any]]:
        # Every process's; this process's if Redis cannot be read.
        try:
            return transport.history(limit)
        except Exception:
            return super().recent_rows(limit)

    def recent_events(self, limit: int, event_filter: EventFilter) -> list[dict[str, Any]]:
        # As recent_rows(): every process's; this process's if Redis cannot be read.
        try:
            entries = transport.history_events(limit)
        except Exception:
            return super().recent_events(limit, event_filter)
        return [event for row, event in reversed(entries) if event_filter.matches(row)]

    def other_event(self, history_id: str) -> dict[str, Any] | None:
        return transport.history_event(history_id)

    def other_requests(self) -> list[dict[str, Any]]:
        return transport.other_requests()

    def origin_events(
        self, host: str, pid: int, origin_id: int
    ) -> list[tuple[str, dict[str, Any]]]:
        limit = get_config()["HISTORY_SIZE"]
        return [
            (row["history_id"], event)
            for row, event in transport.history_events(limit)
            if (row["origin"].get("host"), row["origin"].get("pid"), row["origin"].get("id"))
            == (host, pid, origin_id)
            and "receivers" in event  # a send, not a finding
        ]

    def latency_store(self) -> LatencyStore:
        return transport.merged_latency_store()

    def status(self) -> dict[str, Any]:
        return transport.status()

    async def attach(self, receiver: BatchReceiver) -> None:
        await transport.relay.attach(receiver)

    async def detach(self, receiver: BatchReceiver) -> None:
        await transport.relay.detach(receiver)

    def tail_layer(self) -> BaseChannelLayer:
        return transport.channel_layer()
