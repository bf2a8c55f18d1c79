"""The interface of a backend: where the dashboards' events and statistics come from.

Like channels' layers, the backend is chosen by a setting (``REDIS_URL``: see
:func:`signal_dashboard.backends.backend`), and nobody else asks which one it is: pages, sockets,
exports and ``signals_tail`` ask the backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

    from ..capture.events import Row
    from ..capture.recording import Switch
    from ..record.broadcast import BatchReceiver
    from ..record.filters import EventFilter
    from ..record.stats.store import LatencyStore


class NotShared(Exception):
    """The backend carries no events between processes (so there is nothing to tail)."""


class TransportDown(Exception):
    """The dashboards' group cannot be joined: the backend's server does not answer."""


class Backend:
    """Where events and statistics go and come from: this process, or every process."""

    def recent_rows(self, limit: int) -> list[Row]:
        """Rows of the recent events, newest first."""
        raise NotImplementedError

    def recent_events(self, limit: int, event_filter: EventFilter) -> list[dict[str, Any]]:
        """Of the events ``recent_rows(limit)`` gives, those whose rows pass ``event_filter``,
        oldest first, each whole (``SignalEvent.as_dict()``)."""
        raise NotImplementedError

    def other_event(self, history_id: str) -> dict[str, Any] | None:
        """Another process's event (its whole form) by its history id; None if it is not
        there. May raise if the backend cannot be read."""
        return None

    def other_requests(self) -> list[dict[str, Any]]:
        """Other processes' recent requests, commands and task runs (each its
        ``queries.origin_data()``), in no order; none if the backend reaches no other. May
        raise if the backend cannot be read."""
        return []

    def origin_events(
        self, host: str, pid: int, origin_id: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """Of the recent events of another process, those its request, command or task run
        ``origin_id`` caused: (history id, whole form) each. May raise if the backend cannot
        be read."""
        return []

    def latency_store(self) -> LatencyStore:
        """The statistics the dashboards show."""
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        """What dashboards show about the backend: ``shared``, ``up``, ``error``, ``dropped``."""
        raise NotImplementedError

    async def attach(self, receiver: BatchReceiver) -> None:
        """Hand ``receiver`` every batch of events from now on (raises TransportDown if the
        backend cannot be reached)."""
        raise NotImplementedError

    async def detach(self, receiver: BatchReceiver) -> None:
        raise NotImplementedError

    def recording(self) -> Switch:
        """Whether sends are traced, in every process the backend reaches."""
        raise NotImplementedError

    def set_recording(self, on: bool, by: str) -> Switch:
        """Start or stop tracing in every process the backend reaches (``by`` names who)."""
        raise NotImplementedError

    def tail_layer(self) -> BaseChannelLayer:
        """The channel layer ``signals_tail`` reads every process's events from (NotShared if
        there is none)."""
        raise NotImplementedError
