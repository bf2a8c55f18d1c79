"""The Redis backend (``REDIS_URL``): every process's events and statistics, through Redis (the
machinery is in signal_dashboard.transport)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import transport
from .local import LocalBackend

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

    from ..broadcast import BatchReceiver
    from ..stats.store import LatencyStore


class RedisBackend(LocalBackend):
    def recent_rows(self, limit: int) -> list[dict[str, Any]]:
        # Every process's; this process's if Redis cannot be read.
        try:
            return transport.history(limit)
        except Exception:
            return super().recent_rows(limit)

    def other_event(self, history_id: str) -> dict[str, Any] | None:
        return transport.history_event(history_id)

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
