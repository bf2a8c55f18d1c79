"""The Redis transport: every process's signal events and statistics on every dashboard.

The machinery of backends.redis, in one module on purpose: the publisher, the relay, the history
and the merged statistics share one Redis layout (keys, layer, client set-up and timeouts).

Off by default: events go to dashboards in the same process (see broadcast.py). With
``SIGNAL_DASHBOARD["REDIS_URL"]`` set, every process with tracing installed (web workers,
management commands, scripts) runs a :class:`Publisher`: a daemon thread with an event loop of
its own that, every ``FLUSH_INTERVAL``, drains the recorder and

- sends the events recorded since as one batch to the dashboards' group on a channels_redis
  layer, so every open dashboard of every process gets them;
- appends them to a capped Redis stream, the history a newly opened dashboard starts from (one
  script call per batch);
- stores the process's latency statistics (when they changed) under a key of its own that
  expires ``STATS_RETENTION`` seconds after the process last wrote it.

A web process with dashboards open reads the group once, in its :class:`Relay`, which hands
each batch to every dashboard socket there.

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

from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers, get_channel_layer

from . import tracing
from .broadcast import GROUP, STATUS_INTERVAL, BatchReceiver, EventBatches, Fanout
from .conf import get_config
from .context import HOST, PID, suspended
from .recorder import recorder
from .recording import Switch
from .stats.merge import MergedStore
from .stats.store import SNAPSHOT_FORMAT, LatencyStore

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer


logger = logging.getLogger("signal_dashboard")

ALIAS = "signal_dashboard"
SOURCE = f"{HOST}:{PID}"
# One capped stream, an entry per event holding its row (what dashboards list and filter) and
# the whole event (what its detail shows), both in msgpack; a row names its entry as
# "history_id".
EVENTS_KEY = "signal_dashboard:events"
# Appends a batch to the stream in one call. ARGV: the cap, the oldest id kept (older entries
# go, whatever the cap says), then a msgpack array of each event's row and whole form, in turn.
# Returns the new entries' ids, space-separated. In the client, this costs a few microseconds
# per event; a pipeline of one XADD per event cost some 30.
_APPEND_SCRIPT = """
local forms = cmsgpack.unpack(ARGV[3])
local ids = {}
for i = 1, #forms, 2 do
    ids[#ids + 1] = redis.call(
        "XADD", KEYS[1], "MAXLEN", "~", ARGV[1], "*", "row", forms[i], "event", forms[i + 1])
end
redis.call("XTRIM", KEYS[1], "MINID", "~", ARGV[2])
return table.concat(ids, " ")
"""
# With the snapshot's format in it: processes of versions that write another format do not
# read each other's statistics (nor match each other's key pattern).
STATS_KEY_PREFIX = f"signal_dashboard:stats-v{SNAPSHOT_FORMAT}:"
# Each process's latest finished requests, commands and task runs (queries.origin_data()
# each, newest first), as JSON, kept as long as its statistics.
REQUESTS_KEY_PREFIX = "signal_dashboard:requests-v1:"
REQUESTS_PUBLISHED = 50

FLUSH_INTERVAL = 0.1
MAX_BATCH = 500  # rows per message: channels_redis keeps whole messages in memory
CONNECT_TIMEOUT = 1.0
OPERATION_TIMEOUT = 2.0
LAYER_READ_TIMEOUT = 15.0
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 5.0
STATS_INTERVAL = 1.0
# Writing the statistics, and merging every process's, takes time in proportion to them (some
# 120 ms to write 36 series with a full window of wide histograms): when they take long, a
# process writes them less often than every STATS_INTERVAL, and merges them less often than
# every MERGED_STATS_TTL, so that each takes at most this share of its time.
STATS_SHARE = 0.02
STATS_RETENTION = 600
EXIT_FLUSH_TIMEOUT = 3.0
# Merged statistics are read from Redis at most this often.
MERGED_STATS_TTL = 1.0


def redis_url() -> str | None:
    return get_config()["REDIS_URL"] or None


def _hosts(url: str) -> list[dict[str, Any]]:
    # A dashboard's receive blocks in BRPOP for up to channels_redis's brpop_timeout (5 s) when
    # nothing happens: reads must be allowed longer than that (redis-py's default is not). The
    # publisher bounds its own calls.
    return [
        {
            "address": url,
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "socket_timeout": LAYER_READ_TIMEOUT,
        }
    ]


def _redis_layer(url: str) -> BaseChannelLayer:
    from channels_redis.core import RedisChannelLayer

    return RedisChannelLayer(hosts=_hosts(url), prefix="signal_dashboard:channels")


# The URL each of our channel layer aliases was made for.
_registered: dict[str, str] = {}


def layer_alias() -> str:
    """The alias of the layer the dashboards' group is on (read by the relay and signals_tail):
    ours on Redis, or the project's default."""
    url = redis_url()
    if url is None:
        return DEFAULT_CHANNEL_LAYER
    # channels forgets its layers when CHANNEL_LAYERS changes, and the URL may have changed:
    # register ours again if needed.
    if ALIAS not in channel_layers.backends or _registered.get(ALIAS) != url:
        channel_layers.set(ALIAS, _redis_layer(url))
        _registered[ALIAS] = url
    return ALIAS


# --- The recording switch ---------------------------------------------------------------------

RECORDING_KEY = "signal_dashboard:recording"
# How often each process's publisher reads the switch (seconds).
RECORDING_POLL = 1.0


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
        _switch_read = (now, _read_switch(_redis_client(redis_url() or "")))
    return _switch_read[1]


_switch_read: tuple[float, Switch] | None = None


def set_recording_switch(switch: Switch) -> Switch:
    """Store the switch for every process (their publishers apply it)."""
    global _switch_read
    _redis_client(redis_url() or "").set(RECORDING_KEY, json.dumps(switch.as_dict()))
    if Publisher.current is not None:
        Publisher.current.switch = switch
    _switch_read = (time.monotonic(), switch)
    return switch


def _read_switch(client: Any) -> Switch:
    stored = client.get(RECORDING_KEY)
    return Switch() if stored is None else Switch.from_dict(json.loads(stored))


def channel_layer() -> BaseChannelLayer:
    return get_channel_layer(layer_alias())


def _redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=OPERATION_TIMEOUT
    )


# --- Reading what every process sent ----------------------------------------------------------


def history(limit: int) -> list[dict[str, Any]]:
    """The rows of every process's newest ``limit`` events, newest first; raises the client's
    error if Redis cannot be reached."""
    return [_row(entry_id, fields) for entry_id, fields in _newest_entries(limit)]


def history_events(limit: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every process's newest ``limit`` events, newest first, each as its row (as ``history()``
    gives it) and its whole form (its ``as_dict()``); raises the client's error if Redis cannot
    be reached."""
    import msgpack

    return [
        (_row(entry_id, fields), msgpack.unpackb(fields[b"event"]))
        for entry_id, fields in _newest_entries(limit)
    ]


def _newest_entries(limit: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The history's newest ``limit`` entries, newest first (none without Redis)."""
    url = redis_url()
    if url is None:
        return []
    client = _redis_client(url)
    try:
        return client.xrevrange(EVENTS_KEY, count=limit)
    finally:
        client.close()


def _row(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    """The row of a history entry, naming the entry as its ``history_id``."""
    import msgpack

    return {**msgpack.unpackb(fields[b"row"]), "history_id": entry_id.decode()}


def history_event(history_id: str) -> dict[str, Any] | None:
    """One event of any process (its ``as_dict()``), if Redis still has it."""
    url = redis_url()
    if url is None:
        return None
    import msgpack

    client = _redis_client(url)
    try:
        entries = client.xrange(EVENTS_KEY, min=history_id, max=history_id, count=1)
    finally:
        client.close()
    return msgpack.unpackb(entries[0][1][b"event"]) if entries else None


class _MergedCache:
    store: LatencyStore | None = None
    read_at = 0.0
    ttl = MERGED_STATS_TTL
    error = ""
    unreadable = 0  # snapshots skipped as unreadable


def merged_latency_store() -> LatencyStore:
    """Every process's statistics, merged (read from Redis at most every ``MERGED_STATS_TTL``).

    If Redis cannot be read, or holds no other process's, this process's own statistics (and
    in the first case ``status()`` says so).
    """
    now = time.monotonic()
    cached = _MergedCache.store
    if cached is not None and now - _MergedCache.read_at < _MergedCache.ttl:
        return cached
    own = recorder.latency
    try:
        snapshots = _read_snapshots()
    except Exception as error:
        _MergedCache.error = f"Redis unreachable: {error}"
        return own
    _MergedCache.error = ""
    store = own
    merging = time.monotonic()  # the wait for Redis above costs no CPU: it does not count
    if snapshots:
        store = MergedStore([], window_seconds=own.window_seconds)
        store.storm_threshold = own.storm_threshold
        for snapshot in [*snapshots, own.snapshot(SOURCE)]:
            if isinstance(snapshot, ValueError):
                _unreadable(store, snapshot)
                continue
            try:
                store.add(snapshot)
            except ValueError as error:
                _unreadable(store, error)
    _MergedCache.store, _MergedCache.read_at = store, now
    _MergedCache.ttl = max(MERGED_STATS_TTL, (time.monotonic() - merging) / STATS_SHARE)
    return store


def _read_snapshots() -> list[dict[str, Any] | ValueError]:
    """Every other process's statistics (a ValueError for each that is not JSON or not a
    snapshot). This process's own figures are fresher than what it last wrote to Redis, so its
    key is not read."""
    snapshots: list[dict[str, Any] | ValueError] = []
    for key, value in _others(STATS_KEY_PREFIX):
        if not value:  # expired since the scan
            continue
        name = key.decode(errors="replace")
        try:
            snapshot = json.loads(value)
        except ValueError as error:
            snapshots.append(ValueError(f"{name} is not JSON ({error})."))
            continue
        if isinstance(snapshot, dict):
            snapshots.append(snapshot)
        else:
            snapshots.append(ValueError(f"{name} holds no statistics."))
    return snapshots


def _others(prefix: str) -> list[tuple[bytes, bytes | None]]:
    """(key, value) of every other process's key under ``prefix`` (the value None if it
    expired since it was listed)."""
    url = redis_url()
    assert url is not None
    own_key = (prefix + SOURCE).encode()
    client = _redis_client(url)
    try:
        keys = [key for key in client.scan_iter(match=f"{prefix}*", count=100) if key != own_key]
        values = client.mget(keys) if keys else []
    finally:
        client.close()
    return list(zip(keys, values, strict=True))


class _OtherRequests:
    rows: list[dict[str, Any]] = []
    read_at = -MERGED_STATS_TTL


def other_requests() -> list[dict[str, Any]]:
    """Every other process's published requests, commands and task runs (read from Redis at
    most every ``MERGED_STATS_TTL``); a process's that cannot be read is left out."""
    now = time.monotonic()
    if now - _OtherRequests.read_at < MERGED_STATS_TTL:
        return _OtherRequests.rows
    rows: list[dict[str, Any]] = []
    for _, value in _others(REQUESTS_KEY_PREFIX):
        try:
            published = json.loads(value) if value else []
        except ValueError:
            continue
        if isinstance(published, list):
            rows.extend(row for row in published if isinstance(row, dict) and "kind" in row)
    _OtherRequests.rows, _OtherRequests.read_at = rows, now
    return rows


def _unreadable(store: MergedStore, error: ValueError) -> None:
    """A process's statistics could not be read: the others are shown without them, and the
    dashboard says how many are left out."""
    store.unreadable.append(str(error))
    _MergedCache.unreadable += 1
    if _MergedCache.unreadable == 1:
        logger.warning(
            "signal_dashboard skips statistics it cannot read: %s Further ones are counted, "
            "not logged.",
            error,
        )


def status() -> dict[str, Any]:
    """What dashboards show about the transport (see backends.Backend.status())."""
    publisher = Publisher.current
    error = (publisher.error if publisher else "") or _MergedCache.error
    return {
        "shared": True,
        "up": not error,
        "error": error,
        "dropped": publisher.dropped if publisher else 0,
    }


# --- Publishing this process's events ----------------------------------------------------------


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
            tracing.set_recording(switch.on)

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
        return _redis_layer(self.url), client, client.register_script(_APPEND_SCRIPT)

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
        from .queries import origin_data  # the read side's form of them

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


# --- Handing every process's batches to this process's dashboards -----------------------------

# The relay renews its membership of the dashboards' group this often (seconds): channels_redis
# forgets members after its group_expiry (a day by default), and a dashboard may stay open longer.
REJOIN_INTERVAL = 3600.0
# Handed to the dashboards every STATUS_INTERVAL (see Relay._tick()).
TICK = {"type": "dashboard.tick"}


class TransportDown(Exception):
    """The dashboards' group cannot be joined: Redis does not answer."""


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
