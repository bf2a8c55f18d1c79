"""What every process sent, read back from Redis: the history of events (the newest rows, a
send's whole form), every process's statistics merged, and their latest requests, commands and
task runs."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ...record.recorder import recorder
from ...record.stats.merge import MergedStore
from ...record.stats.store import LatencyStore
from .connection import (
    EVENTS_KEY,
    MERGED_STATS_TTL,
    REQUESTS_KEY_PREFIX,
    SOURCE,
    STATS_KEY_PREFIX,
    STATS_SHARE,
    redis_client,
    redis_url,
)

logger = logging.getLogger("signal_dashboard")


def recent_rows(limit: int) -> list[dict[str, Any]]:
    """The rows of every process's newest ``limit`` events, newest first; raises the client's
    error if Redis cannot be reached."""
    return [_row(entry_id, fields) for entry_id, fields in _newest_entries(limit)]


def events(limit: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every process's newest ``limit`` events, newest first, each as its row (as ``recent_rows()``
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
    client = redis_client(url)
    try:
        return client.xrevrange(EVENTS_KEY, count=limit)
    finally:
        client.close()


def _row(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    """The row of a history entry, naming the entry as its ``history_id``."""
    import msgpack

    return {**msgpack.unpackb(fields[b"row"]), "history_id": entry_id.decode()}


def event(history_id: str) -> dict[str, Any] | None:
    """One event of any process (its ``as_dict()``), if Redis still has it."""
    url = redis_url()
    if url is None:
        return None
    import msgpack

    client = redis_client(url)
    try:
        entries = client.xrange(EVENTS_KEY, min=history_id, max=history_id, count=1)
    finally:
        client.close()
    return msgpack.unpackb(entries[0][1][b"event"]) if entries else None


class MergedCache:
    store: LatencyStore | None = None
    read_at = 0.0
    ttl = MERGED_STATS_TTL
    error = ""
    unreadable = 0  # snapshots skipped as unreadable


def merged_latency_store() -> LatencyStore:
    """Every process's statistics, merged (read from Redis at most every ``MERGED_STATS_TTL``).

    If Redis cannot be read, or holds no other process's, this process's own statistics (and
    in the first case the backend's ``status()`` says so).
    """
    now = time.monotonic()
    cached = MergedCache.store
    if cached is not None and now - MergedCache.read_at < MergedCache.ttl:
        return cached
    own = recorder.latency
    try:
        snapshots = _read_snapshots()
    except Exception as error:
        MergedCache.error = f"Redis unreachable: {error}"
        return own
    MergedCache.error = ""
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
    MergedCache.store, MergedCache.read_at = store, now
    MergedCache.ttl = max(MERGED_STATS_TTL, (time.monotonic() - merging) / STATS_SHARE)
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
    client = redis_client(url)
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
    MergedCache.unreadable += 1
    if MergedCache.unreadable == 1:
        logger.warning(
            "signal_dashboard skips statistics it cannot read: %s Further ones are counted, "
            "not logged.",
            error,
        )
