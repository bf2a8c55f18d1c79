"""The in-process recorder: recent events and requests, latency statistics, and the hook later
stages attach to."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from . import context
from .stats import LatencyStore

if TYPE_CHECKING:
    from .context import Origin
    from .events import SignalEvent

logger = logging.getLogger("signal_dashboard")

Subscriber = Callable[["SignalEvent"], None]


class Recorder:
    """Keeps the last ``size`` events and request summaries, and hands each event to subscribers.

    ``deque.append`` with a ``maxlen`` is atomic under the GIL, so recording takes no lock.
    Subscribers run on the thread that sent the signal: they must only hand the event on.
    """

    def __init__(self, size: int = 2000, request_size: int = 500) -> None:
        self.events: deque[SignalEvent] = deque(maxlen=size)
        self.requests: deque[Origin] = deque(maxlen=request_size)
        self.subscribers: tuple[Subscriber, ...] = ()
        self.subscriber_failures = 0
        self.latency = LatencyStore()

    def record(self, event: SignalEvent) -> None:
        self.events.append(event)
        self.latency.record(event)
        if self.subscribers:
            self._notify(event)

    def _notify(self, event: SignalEvent) -> None:
        with context.suspended():
            for subscriber in self.subscribers:
                try:
                    subscriber(event)
                except Exception:
                    self.subscriber_failures += 1
                    if self.subscriber_failures == 1:
                        logger.exception("signal_dashboard subscriber %r failed", subscriber)

    def record_request(self, origin: Origin) -> None:
        """Keep a finished request's (or command's) summary and note its receiver storms."""
        origin.storms = self.latency.record_origin(origin)
        self.requests.append(origin)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(event)`` for every recorded event; returns the unsubscribe function."""
        # Replacing the tuple (rather than mutating a list) lets record() iterate without a lock.
        self.subscribers = (*self.subscribers, subscriber)

        def unsubscribe() -> None:
            self.subscribers = tuple(s for s in self.subscribers if s is not subscriber)

        return unsubscribe

    @contextmanager
    def subscribed(self, subscriber: Subscriber) -> Iterator[None]:
        unsubscribe = self.subscribe(subscriber)
        try:
            yield
        finally:
            unsubscribe()

    def resize(self, size: int, request_size: int) -> None:
        if size != self.events.maxlen:
            self.events = deque(self.events, maxlen=size)
        if request_size != self.requests.maxlen:
            self.requests = deque(self.requests, maxlen=request_size)

    def configure_latency(self, window_seconds: int, storm_threshold: int, max_keys: int) -> None:
        if window_seconds != self.latency.window_seconds:
            # Slices of another length cannot be compared: start the statistics afresh.
            self.latency = LatencyStore(window_seconds=window_seconds)
        self.latency.storm_threshold = storm_threshold
        self.latency.max_keys = max_keys

    def clear(self) -> None:
        self.events.clear()
        self.requests.clear()
        self.latency.clear()


recorder = Recorder()
