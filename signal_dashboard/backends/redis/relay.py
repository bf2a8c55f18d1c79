"""This process's one member of the dashboards' group on Redis, handing every process's batches
to the dashboards open here."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ...record.broadcast import GROUP, STATUS_INTERVAL, BatchReceiver, Fanout
from ..base import TransportDown
from .connection import OPERATION_TIMEOUT, channel_layer

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

logger = logging.getLogger("signal_dashboard")


# The relay renews its membership of the dashboards' group this often (seconds): channels_redis
# forgets members after its group_expiry (a day by default), and a dashboard may stay open longer.
REJOIN_INTERVAL = 3600.0
# Handed to the dashboards every STATUS_INTERVAL (see Relay._tick()).
TICK = {"type": "dashboard.tick"}


class Relay(Fanout):
    """This process's one member of the dashboards' group on Redis.

    It reads each batch once and hands it to every dashboard socket open in this process, as the
    broadcaster does with the in-memory stream. A member per socket would cost a serialization
    per socket in every publisher and a Redis read and a deserialization per socket here.

    Every ``STATUS_INTERVAL`` it also hands them ``TICK``, so that they refresh their status
    and tables when no process sends events.

    If Redis stops answering while dashboards are attached, each is handed a
    ``{"type": "transport.down", "error": ...}`` message and detached; a dashboard opened again
    joins afresh. Runs on the server's event loop; every receiver must only read the batches.
    """

    def __init__(self) -> None:
        super().__init__()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._layer: BaseChannelLayer | None = None
        self._channel = ""
        self._tasks: list[asyncio.Task[None]] = []

    def _state_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._lock is None:
            # A new event loop (the server restarted in this process): what ran on the old one
            # is gone with it.
            self._loop, self._lock = loop, asyncio.Lock()
            self.receivers, self._layer, self._channel, self._tasks = (), None, "", []
        return self._lock

    async def attach(self, receiver: BatchReceiver) -> None:
        """A dashboard connected: hand it every batch from now on. Raises
        :class:`TransportDown` if the group cannot be joined."""
        async with self._state_lock():
            if self._layer is None:
                layer = channel_layer()
                try:
                    channel = await layer.new_channel()
                    await layer.group_add(GROUP, channel)
                except Exception as error:
                    raise TransportDown(str(error)) from error
                self._layer, self._channel = layer, channel
                loop = asyncio.get_running_loop()
                self._tasks = [
                    loop.create_task(self._read(layer, channel)),
                    loop.create_task(self._rejoin(layer, channel)),
                    loop.create_task(self._tick()),
                ]
            self.receivers = (*self.receivers, receiver)

    async def detach(self, receiver: BatchReceiver) -> None:
        """A dashboard left; with none left, leave the group."""
        async with self._state_lock():
            self.receivers = tuple(r for r in self.receivers if r != receiver)
            if not self.receivers and self._layer is not None:
                layer, channel = self._layer, self._channel
                self._stop()
                try:
                    await asyncio.wait_for(layer.group_discard(GROUP, channel), OPERATION_TIMEOUT)
                except Exception:
                    # Redis is down: the membership expires with the channel's unread messages.
                    logger.debug("signal_dashboard could not leave the group", exc_info=True)

    def _stop(self) -> None:
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self._layer, self._channel, self._tasks = None, "", []

    async def _read(self, layer: BaseChannelLayer, channel: str) -> None:
        while True:
            try:
                message = await layer.receive(channel)
            except Exception as error:
                await self._lost(error, channel)
                return
            if message.get("type") == "signal.batch":
                await self.hand_over(message)

    async def _tick(self) -> None:
        # Batches come only while some process sends events; the dashboards' status (each
        # process's rate) and other processes' statistics change without them.
        while True:
            await asyncio.sleep(STATUS_INTERVAL)
            await self.hand_over(TICK)

    async def _rejoin(self, layer: BaseChannelLayer, channel: str) -> None:
        while True:
            await asyncio.sleep(REJOIN_INTERVAL)
            try:
                await layer.group_add(GROUP, channel)
            except Exception as error:
                await self._lost(error, channel)
                return

    async def _lost(self, error: Exception, channel: str) -> None:
        async with self._state_lock():
            if channel != self._channel:  # the dashboards left meanwhile
                return
            receivers, self.receivers = self.receivers, ()
            self._stop()
        logger.warning("signal_dashboard lost Redis while dashboards were open (%s)", error)
        down = {"type": "transport.down", "error": f"{type(error).__name__}: {error}"[:200]}
        await self.hand_over(down, receivers)


relay = Relay()
