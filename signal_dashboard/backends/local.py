"""The local backend (the default): this process's events and statistics, handed to its
dashboards by the broadcaster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..broadcast import broadcaster
from ..recorder import recorder
from .base import Backend, NotShared

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

    from ..broadcast import BatchReceiver
    from ..stats.store import LatencyStore

NOT_SHARED = (
    "signals_tail needs the Redis transport: without it each server process keeps its events "
    "in its own in-memory channel layer, which no other process can see. Set "
    'SIGNAL_DASHBOARD = {"REDIS_URL": "redis://..."} in the settings (and install '
    "signal-dashboard[redis]), or watch the dashboard page in a browser instead."
)


class LocalBackend(Backend):
    def recent_rows(self, limit: int) -> list[dict[str, Any]]:
        return [event.as_row() for event in reversed(list(recorder.events))][:limit]

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
