"""The local backend (the default): this process's events and statistics, handed to its
dashboards by the broadcaster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import tracing
from ..broadcast import broadcaster
from ..recorder import recorder
from ..recording import Switch
from .base import Backend, NotShared

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

    from ..broadcast import BatchReceiver
    from ..filters import EventFilter
    from ..stats.store import LatencyStore

NOT_SHARED = (
    "signals_tail needs the Redis transport: without it each server process keeps its events "
    "in its own in-memory channel layer, which no other process can see. Set "
    'SIGNAL_DASHBOARD = {"REDIS_URL": "redis://..."} in the settings (and install '
    "signal-dashboard[redis]), or watch the dashboard page in a browser instead."
)


class LocalBackend(Backend):
    def __init__(self) -> None:
        self._switch = Switch()

    def recording(self) -> Switch:
        return self._switch

    def set_recording(self, on: bool, by: str) -> Switch:
        self._switch = Switch.set(on, by)
        tracing.set_recording(on)
        return self._switch

    def recent_rows(self, limit: int) -> list[dict[str, Any]]:
        return [event.as_row() for event in reversed(list(recorder.events))][:limit]

    def recent_events(self, limit: int, event_filter: EventFilter) -> list[dict[str, Any]]:
        events = list(recorder.events)
        return [
            event.as_dict()
            for event in events[max(0, len(events) - limit) :]
            if event_filter.matches(event.as_row())
        ]

    def latency_store(self) -> LatencyStore:
        return recorder.latency

    def status(self) -> dict[str, Any]:
        return {"shared": False, "up": True, "error": "", "dropped": 0}

    async def attach(self, receiver: BatchReceiver) -> None:
        broadcaster.attach(receiver)

    async def detach(self, receiver: BatchReceiver) -> None:
        broadcaster.detach(receiver)

    def tail_layer(self) -> BaseChannelLayer:
        raise NotShared(NOT_SHARED)
