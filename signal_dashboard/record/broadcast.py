"""Hands events from the recorder to this process's dashboards, in batches, counting what it drops.

The recorder calls the broadcaster as it accounts each event, off the sending thread; all it
does there is append to a bounded deque. A task on the server's event loop drains the recorder
and then that deque every ``FLUSH_INTERVAL`` and hands each batch to every attached dashboard,
so each socket gets at most ``1 / FLUSH_INTERVAL`` pushes a second however busy the app is.

Batches go to the dashboards directly rather than through the channel layer: the in-memory
layer deep-copies a message for every channel in a group, that is, every row once per socket.
Every receiver gets the same batch, which it must only read. (With the Redis transport the
publisher, backends/redis/publisher.py, sends batches through the channel layer instead, and
dashboards attach to the process's relay, also a :class:`Fanout`, which reads them from
there.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..conf import get_config
from .recorder import recorder

if TYPE_CHECKING:
    from ..capture.events import SignalEvent

logger = logging.getLogger("signal_dashboard")

# What a batch is handed to: a dashboard's coroutine taking the (read-only) batch.
BatchReceiver = Callable[[Mapping[str, Any]], Awaitable[None]]

GROUP = "signal_dashboard.events"
FLUSH_INTERVAL = 0.1
# How long the events-per-second figure looks back.
RATE_WINDOW = 5.0
# With no events, dashboards still get the status (rate, drops) this often.
STATUS_INTERVAL = 1.0


class Fanout:
    """Hands each batch to every dashboard attached in this process."""

    def __init__(self) -> None:
        # Replaced, never mutated, so a hand-over can go on iterating while dashboards come
        # and go.
        self.receivers: tuple[BatchReceiver, ...] = ()
        self.receiver_failures = 0

    @property
    def listeners(self) -> int:
        return len(self.receivers)

    async def hand_over(
        self, batch: Mapping[str, Any], receivers: tuple[BatchReceiver, ...] | None = None
    ) -> None:
        """Hand ``batch`` to every receiver (by default, every attached one)."""
        for receiver in self.receivers if receivers is None else receivers:
            try:
                await receiver(batch)
            except Exception:
                # One broken dashboard must not starve the others.
                self.receiver_failures += 1
                if self.receiver_failures == 1:
                    logger.exception("signal_dashboard could not hand a batch to %r", receiver)


class EventBatches:
    """Takes the recorder's events into a bounded deque and makes batches of their rows: what
    the broadcaster (this process's dashboards) and the Redis publisher share."""

    def __init__(self, buffer_size: int | None = None) -> None:
        self.pending: deque[SignalEvent] = deque(maxlen=buffer_size)
        self.dropped = 0  # events lost: buffer overflow, rows that could not be made, refusals
        self.sent = 0  # rows sent, ever: the running number dashboards spot gaps with
        self._recent: deque[tuple[float, int]] = deque()  # (when, rows) in the RATE_WINDOW

    def __call__(self, event: SignalEvent) -> None:
        """Where the recorder accounts each event (in its drains)."""
        pending = self.pending
        if len(pending) == pending.maxlen:
            self.dropped += 1
        pending.append(event)

    def batch(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The message of a batch of rows, with the events-per-second rate over RATE_WINDOW."""
        now = time.monotonic()
        recent = self._recent
        recent.append((now, len(rows)))
        while recent and recent[0][0] < now - RATE_WINDOW:
            recent.popleft()
        span = max(FLUSH_INTERVAL, now - recent[0][0])
        return {
            "type": "signal.batch",
            "rows": rows,
            "first": self.sent,  # the running number of this batch's first row
            # With the events the recorder could not take (see capture/outbox.PENDING_LIMIT).
            "dropped": self.dropped + recorder.lost,
            "rate": sum(count for _, count in recent) / span,
        }


class Broadcaster(Fanout, EventBatches):
    """Subscribed to the recorder while at least one dashboard in this process is attached."""

    def __init__(self) -> None:
        Fanout.__init__(self)
        EventBatches.__init__(self)
        self._unsubscribe: Any = None
        self._task: asyncio.Task[None] | None = None
        self._last_push = 0.0

    # -- on the event loop ----------------------------------------------------------------

    def attach(self, receiver: BatchReceiver) -> None:
        """A dashboard connected: hand it every batch from now on."""
        self.receivers = (*self.receivers, receiver)
        if self._unsubscribe is None:
            self.pending = deque(maxlen=get_config()["STREAM_BUFFER_SIZE"])
            self._unsubscribe = recorder.subscribe(self)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def detach(self, receiver: BatchReceiver) -> None:
        """A dashboard left; with none left, stop listening and sending."""
        self.receivers = tuple(r for r in self.receivers if r != receiver)
        if self.receivers:
            return
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.pending.clear()

    async def _run(self) -> None:
        # From the start of one flush to the next, as handing a batch over takes the dashboards'
        # time: otherwise a busy stream would be flushed less often, in batches they cut short.
        due = time.monotonic() + FLUSH_INTERVAL
        while True:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            due = time.monotonic() + FLUSH_INTERVAL
            await self.flush()

    async def flush(self) -> None:
        """Hand everything sent so far over as one batch; with nothing pending, the status once
        a second."""
        recorder.drain_quietly(wait=False, periodic=True)  # the thread may not have come yet
        rows = self._drain()
        now = time.monotonic()
        if not rows and now - self._last_push < STATUS_INTERVAL:
            return
        self._last_push = now
        batch = self.batch(tuple(rows))
        self.sent += len(rows)
        await self.hand_over(batch)

    def _drain(self) -> list[dict[str, Any]]:
        rows = []
        pending = self.pending
        while pending:
            event = pending.popleft()
            try:
                rows.append(event.as_row())
            except Exception:
                self.dropped += 1
                logger.debug("signal_dashboard could not serialize %r", event, exc_info=True)
        return rows


broadcaster = Broadcaster()
