"""This process's events, statistics and latest requests, published to Redis from a thread of
its own; and the recording switch every process's publisher follows.

The recorder's drains only append to a bounded deque. Redis being down costs the app nothing but
the events: a batch that cannot be sent is dropped and counted, retries back off up to
``MAX_BACKOFF``, and the stream resumes when Redis is back. At exit a process flushes what it
recorded, waiting at most ``EXIT_FLUSH_TIMEOUT`` (so ``migrate``'s signals arrive).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from ...capture import send
from ...capture.context import suspended
from ...capture.recording import Switch
from ...conf import get_config
from ...record.broadcast import GROUP, EventBatches
from ...record.recorder import recorder
from .connection import (
    APPEND_SCRIPT,
    CONNECT_TIMEOUT,
    EVENTS_KEY,
    EXIT_FLUSH_TIMEOUT,
    FIRST_BACKOFF,
    FLUSH_INTERVAL,
    MAX_BACKOFF,
    MAX_BATCH,
    OPERATION_TIMEOUT,
    RECORDING_KEY,
    RECORDING_POLL,
    REQUESTS_KEY_PREFIX,
    REQUESTS_PUBLISHED,
    SOURCE,
    STATS_INTERVAL,
    STATS_KEY_PREFIX,
    STATS_RETENTION,
    STATS_SHARE,
    redis_client,
    redis_layer,
    redis_url,
)

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

logger = logging.getLogger("signal_dashboard")


class Publisher(EventBatches):
    """Hands this process's events to Redis from a thread of its own."""

    current: Publisher | None = None

    def __init__(self, url: str, buffer_size: int) -> None:
        import msgpack  # with channels_redis

        self.url = url
        # Reused by the publisher's thread: msgpack.packb() makes a packer, and its large
        # buffer, for every call.
        self._pack = msgpack.Packer(default=str).pack
        # Redis's Lua reads only the older msgpack format's strings.
        self._pack_for_lua = msgpack.Packer(use_bin_type=False).pack
        super().__init__(buffer_size)
        self.error = ""  # why the last attempt failed; empty while Redis answers
        self.switch: Switch | None = None  # the recording switch, as last read
        self._switch_read_at = 0.0
        self._retry_at = 0.0
        self._backoff = 0.0
        self._stats_version = -1
        self._stats_written_at = 0.0
        self._stats_interval = STATS_INTERVAL
        self._requests_added = 0
        self._requests_written_at = 0.0
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._unsubscribe: Any = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._unsubscribe = recorder.subscribe(self)
        self._thread = threading.Thread(
            target=self._run, name="signal-dashboard-publisher", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    def close(self, timeout: float = EXIT_FLUSH_TIMEOUT) -> None:
        """Send what is pending (waiting at most ``timeout``) and stop."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._stopping.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(wake.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        atexit.unregister(self.close)

    # -- on the publisher's thread ------------------------------------------------------------

    async def _follow_switch(self, client: Any) -> None:
        """Start or stop tracing here as the recording switch in Redis says."""
        self._switch_read_at = time.monotonic()
        try:
            stored = await client.get(RECORDING_KEY)
        except Exception:
            return  # the batches' attempts say why Redis cannot be read
        switch = Switch() if stored is None else Switch.from_dict(json.loads(stored))
        if switch != self.switch:
            self.switch = switch
            send.set_recording(switch.on)

    def _run(self) -> None:
        with suspended():  # our own Redis traffic sends no signals worth tracing
            asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        layer, client, append = self._connections()
        try:
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL)
                if time.monotonic() >= self._retry_at:
                    recorder.drain_quietly(periodic=True)  # no need to wait for the thread
                    await self._attempt(layer, client, append)
                if time.monotonic() - self._switch_read_at >= RECORDING_POLL:
                    await self._follow_switch(client)
            # Exiting: one more attempt for what is pending, whatever the back-off says.
            await self._attempt(layer, client, append)
        finally:
            await _quietly(client.aclose())
            await _quietly(layer.close_pools())

    def _connections(self) -> tuple[BaseChannelLayer, Any, Any]:
        """The channel layer, a Redis client and the history's append script, for the event
        loop this is called on (nothing connects until first used)."""
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(
            self.url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=OPERATION_TIMEOUT
        )
        return redis_layer(self.url), client, client.register_script(APPEND_SCRIPT)

    async def _attempt(self, layer: BaseChannelLayer, client: Any, append: Any) -> None:
        try:
            while self.pending:
                await asyncio.wait_for(self._flush(layer, append), OPERATION_TIMEOUT * 2)
            await asyncio.wait_for(self._write_stats(client), OPERATION_TIMEOUT * 2)
            await asyncio.wait_for(self._write_requests(client), OPERATION_TIMEOUT * 2)
        except Exception as error:
            if not self.error:
                logger.warning(
                    "signal_dashboard cannot reach Redis at %s (%s); events are dropped and "
                    "counted until it answers again",
                    self.url,
                    error,
                )
            self.error = f"{type(error).__name__}: {error}"[:200]
            # Connections made before Redis went away are dead: the next attempt makes new ones.
            await _quietly(layer.close_pools())
            await _quietly(client.connection_pool.disconnect())
            self._backoff = min(MAX_BACKOFF, self._backoff * 2 or FIRST_BACKOFF)
            self._retry_at = time.monotonic() + self._backoff
            return
        if self.error:
            logger.warning("signal_dashboard reaches Redis at %s again", self.url)
        self.error = ""
        self._backoff = 0.0

    async def _flush(self, layer: BaseChannelLayer, append: Any) -> None:
        batch = []
        pending = self.pending
        while pending and len(batch) < MAX_BATCH:
            batch.append(pending.popleft())
        rows = []
        packed = []
        pack = self._pack
        for event in batch:
            try:
                row, data = event.as_row_and_dict()
                entry = (pack(row), pack(data))
            except Exception:
                self.dropped += 1
                logger.debug("signal_dashboard could not serialize %r", event, exc_info=True)
                continue
            rows.append(row)
            packed.extend(entry)
        config = get_config()
        oldest = f"{int((time.time() - config['HISTORY_RETENTION']) * 1000)}-0"
        try:
            ids = await append(
                keys=[EVENTS_KEY],
                args=[config["HISTORY_SIZE"], oldest, self._pack_for_lua(packed)],
            )
            for row, history_id in zip(rows, ids.decode().split(), strict=False):
                row["history_id"] = history_id
            await layer.group_send(GROUP, self._message(rows))
        except BaseException:
            self.dropped += len(rows)
            raise
        self.sent += len(rows)

    def _message(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {**self.batch(rows), "source": SOURCE}

    async def _write_requests(self, client: Any) -> None:
        """This process's latest finished requests, commands and task runs, for the other
        processes' Requests tabs: when one was added (and now and then, to outlive expiry)."""
        from ...capture.origins import origin_data

        now = time.monotonic()
        added = recorder.requests_added
        if added == self._requests_added and now - self._requests_written_at < STATS_RETENTION / 2:
            return
        origins = list(recorder.requests)[-REQUESTS_PUBLISHED:]
        data = json.dumps([origin_data(origin) for origin in reversed(origins)], default=str)
        await client.set(REQUESTS_KEY_PREFIX + SOURCE, data, ex=STATS_RETENTION)
        self._requests_added, self._requests_written_at = added, now

    async def _write_stats(self, client: Any) -> None:
        store = recorder.latency
        now = time.monotonic()
        changed = store.version != self._stats_version
        # Rewritten now and then even unchanged, so the key outlives STATS_RETENTION while alive.
        if not changed and now - self._stats_written_at < STATS_RETENTION / 2:
            return
        if (
            changed
            and now - self._stats_written_at < self._stats_interval
            and not self._stopping.is_set()
        ):
            return
        version = store.version
        data = json.dumps(store.snapshot(SOURCE), default=str)
        self._stats_interval = max(STATS_INTERVAL, (time.monotonic() - now) / STATS_SHARE)
        await client.set(STATS_KEY_PREFIX + SOURCE, data, ex=STATS_RETENTION)
        self._stats_version, self._stats_written_at = version, now


async def _quietly(awaitable: Any) -> None:
    try:
        await asyncio.wait_for(awaitable, OPERATION_TIMEOUT)
    except Exception:
        logger.debug("signal_dashboard: closing a Redis connection failed", exc_info=True)


def start_publisher() -> Publisher | None:
    """Start publishing this process's events if the Redis transport is on (once)."""
    url = redis_url()
    if url is None or Publisher.current is not None:
        return Publisher.current
    publisher = Publisher(url, get_config()["STREAM_BUFFER_SIZE"])
    publisher.start()
    Publisher.current = publisher
    return publisher


# --- The recording switch ---------------------------------------------------------------------


def recording_switch() -> Switch:
    """The switch as this process's publisher last read it or, in a process that publishes
    nothing (or before its publisher's first read), as Redis held it at most RECORDING_POLL
    ago: every push of every dashboard shows it."""
    publisher = Publisher.current
    if publisher is not None and publisher.switch is not None:
        return publisher.switch
    global _switch_read
    now = time.monotonic()
    if _switch_read is None or now - _switch_read[0] >= RECORDING_POLL:
        _switch_read = (now, _read_switch(redis_client(redis_url() or "")))
    return _switch_read[1]


_switch_read: tuple[float, Switch] | None = None


def set_recording_switch(switch: Switch) -> Switch:
    """Store the switch for every process (their publishers apply it)."""
    global _switch_read
    redis_client(redis_url() or "").set(RECORDING_KEY, json.dumps(switch.as_dict()))
    if Publisher.current is not None:
        Publisher.current.switch = switch
    _switch_read = (time.monotonic(), switch)
    return switch


def _read_switch(client: Any) -> Switch:
    stored = client.get(RECORDING_KEY)
    return Switch() if stored is None else Switch.from_dict(json.loads(stored))
