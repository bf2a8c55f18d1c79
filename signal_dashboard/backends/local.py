"""The local backend (the default): this process's events and statistics, handed to its
dashboards by the broadcaster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..capture import send
from ..capture.recording import Switch
from ..record.broadcast import broadcaster
from ..record.recorder import recorder
from .base import Backend, NotShared

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

    from ..record.broadcast import BatchReceiver
    from ..record.filters import EventFilter
    from ..record.stats.store import LatencyStore

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
        send.set_recording(on)
        return self._switch

    def recent_rows(self, limit: int) -> list[dict[str, Any]]:
        return [item.as_row() for item in reversed(_recent(limit))]

    def recent_events(self, limit: int, event_filter: EventFilter) -> list[dict[str, Any]]:
        return [item.as_dict() for item in _recent(limit) if event_filter.matches(item.as_row())]

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


def _recent(limit: int) -> list[Any]:
    """The newest ``limit`` of this process's events and signal-hygiene findings, oldest
    first."""
    events: list[Any] = list(recorder.events)
    findings = list(recorder.findings)
    if findings:
        events = sorted([*events, *findings], key=lambda item: item.timestamp)
    return events[max(0, len(events) - limit) :]
