"""Hands events off the sending thread to the channel layer, in batches, counting what it drops.

The recorder calls the broadcaster on the thread that sent the signal; all it does there is
append to a bounded deque. A task on the server's event loop drains the deque every
``FLUSH_INTERVAL`` and sends one message per batch to the dashboards' group, so each socket
gets at most ``1 / FLUSH_INTERVAL`` pushes a second however busy the app is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from channels.layers import get_channel_layer

from .conf import get_config
from .recorder import recorder

if TYPE_CHECKING:
    from .events import SignalEvent

logger = logging.getLogger("signal_dashboard")

GROUP = "signal_dashboard.events"
FLUSH_INTERVAL = 0.1
# How long the events-per-second figure looks back.
RATE_WINDOW = 5.0
# With no events, dashboards still get the status (rate, drops) this often.
STATUS_INTERVAL = 1.0


class Broadcaster:
    """Subscribed to the recorder while at least one dashboard is connected in this process."""

    def __init__(self) -> None:
        self.pending: deque[SignalEvent] = deque()
        self.dropped = 0  # events lost here: buffer overflow, or the channel layer refusing them
        self.sent = 0  # rows handed to the channel layer, ever; sockets use it to spot gaps
        self.listeners = 0
        self._unsubscribe: Any = None
        self._task: asyncio.Task[None] | None = None
        self._recent: deque[tuple[float, int]] = deque()
        self._layer_failed = False
        self._last_push = 0.0

    # -- on the sending thread ------------------------------------------------------------

    def __call__(self, event: SignalEvent) -> None:
        pending = self.pending
        if len(pending) == pending.maxlen:
            self.dropped += 1
        pending.append(event)

    # -- on the event loop ----------------------------------------------------------------

    def attach(self) -> None:
        """A dashboard connected: make sure events flow."""
        self.listeners += 1
        if self._unsubscribe is None:
            self.pending = deque(maxlen=get_config()["STREAM_BUFFER_SIZE"])
            self._unsubscribe = recorder.subscribe(self)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def detach(self) -> None:
        """A dashboard left; with none left, stop listening and sending."""
        self.listeners = max(0, self.listeners - 1)
        if self.listeners:
            return
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.pending.clear()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            await self.flush()

    async def flush(self) -> None:
        """Send everything pending as one batch; with nothing pending, the status once a second."""
        rows = self._drain()
        now = time.monotonic()
        if not rows and now - self._last_push < STATUS_INTERVAL:
            return
        self._last_push = now
        self._recent.append((now, len(rows)))
        while self._recent and self._recent[0][0] < now - RATE_WINDOW:
            self._recent.popleft()
        span = max(FLUSH_INTERVAL, now - self._recent[0][0]) if self._recent else RATE_WINDOW
        message = {
            "type": "signal.batch",
            "rows": rows,
            "first": self.sent,  # the running number of this batch's first row
            "dropped": self.dropped,
            "rate": sum(count for _, count in self._recent) / span,
        }
        try:
            await get_channel_layer().group_send(GROUP, message)
        except Exception:
            self.dropped += len(rows)
            if not self._layer_failed:
                logger.exception("signal_dashboard could not reach the channel layer")
            self._layer_failed = True
            return
        self._layer_failed = False
        self.sent += len(rows)

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
