"""The latency store: per (signal, sender, receiver), a histogram since start and one per time
slice of the rolling window; per receiver, its slowest calls and "storms" (when it ran more than
``STORM_THRESHOLD`` times inside one request). Its series types are only the store's, so they
live here with it.

Recording runs off the sending thread, in the recorder's drains: a batch of sends is grouped by
series first, and each series adds its values to its histogram in one go. No labels are made
then: only when a table is asked for. The store is this process's; stats.merge combines other
processes' snapshots of it.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..database import per_call
from ..events import WALL_OFFSET_NS
from ..labels import OpaqueSender, key_label, receiver_label
from .histogram import Histogram, SealedHistogram
from .table import TableRow

if TYPE_CHECKING:
    from ..context import Origin
    from ..events import SignalEvent
    from ..filters import EventFilter
    from .table import TableQuery

# The layout of LatencyStore.snapshot(): a process reads only snapshots of its own format (the
# histograms are packed, so both sides must share the bucket layout of stats.histogram).
SNAPSHOT_FORMAT = 2

# A series read from a snapshot: (last_ns, expired, [(slice id, histogram), ...], its queries
# by slice id, those of expired slices).
_SeriesData = tuple[
    int, "SealedHistogram", list[tuple[int, "SealedHistogram"]], dict[int, list[int]], list[int]
]


# Queries of several calls: [queries, the most one call made, their time in ns].
def new_queries() -> list[int]:
    return [0, 0, 0]


def add_queries(total: list[int], added: list[int]) -> None:
    total[0] += added[0]
    if added[1] > total[1]:
        total[1] = added[1]
    total[2] += added[2]


def _queries(values: Any) -> list[int]:
    """A Queries list read from a snapshot; ValueError if it is not one."""
    if (
        not isinstance(values, list)
        or len(values) != 3
        or any(type(value) is not int or value < 0 for value in values)
    ):
        raise ValueError("A series' queries are three non-negative integers.")
    return values


class Series:
    """One key's durations: per time slice over the rolling window, and since start.

    Each value is added once, to its slice; slices that leave the window are merged into
    ``expired``, so the total since start is ``expired`` plus the live slices. Only the newest
    slice is added to: the others, and ``expired``, are kept sealed (:class:`SealedHistogram`).
    """

    __slots__ = (
        "batch",
        "batch_errors",
        "expired",
        "last_ns",
        "queries",
        "queries_expired",
        "slices",
        "slowest",
    )

    def __init__(self) -> None:
        self.expired = SealedHistogram(Histogram())
        self.slices: deque[tuple[int, Histogram | SealedHistogram]] = deque()
        self.last_ns = 0  # wall-clock time of the latest value, ns since the epoch
        # For receiver series: the receiver's slowest calls, shared by its series.
        self.slowest: SlowestCalls | None = None
        # Values of the batch being recorded, not in a histogram yet (see LatencyStore.record_many).
        self.batch: list[int] = []
        self.batch_errors = 0
        # The queries of the calls (or sends) per time slice, as Queries lists, and those of
        # slices that left the window.
        self.queries: dict[int, list[int]] = {}
        self.queries_expired = new_queries()

    def add(self, value: int, error: bool, wall_ns: int, slice_id: int, max_slices: int) -> None:
        self.slice(slice_id, max_slices).add(value, error)
        self.last_ns = wall_ns

    def slice(self, slice_id: int, max_slices: int) -> Histogram:
        """The histogram of a time slice (the newest), folding slices that left the window."""
        slices = self.slices
        if slices:
            newest_id, newest = slices[-1]
            if isinstance(newest, Histogram):
                if newest_id == slice_id:
                    return newest
                slices[-1] = (newest_id, SealedHistogram(newest))  # no more values go to it
        histogram = Histogram()
        slices.append((slice_id, histogram))
        if len(slices) > max_slices:
            self._expire([slices.popleft()[1] for _ in range(len(slices) - max_slices)])
            self._expire_queries(slices[0][0])
        return histogram

    def add_queries(self, slice_id: int, count: int, duration_ns: int) -> None:
        """Count one call's (or send's) queries, in its time slice."""
        queries = self.queries.get(slice_id)
        if queries is None:
            queries = self.queries[slice_id] = new_queries()
        add_queries(queries, [count, count, duration_ns])

    def merge_queries(self, slice_id: int, added: list[int]) -> None:
        """Add a Queries list (several calls' queries) to a time slice."""
        queries = self.queries.get(slice_id)
        if queries is None:
            queries = self.queries[slice_id] = new_queries()
        add_queries(queries, added)

    def _expire_queries(self, first_kept: int) -> None:
        for slice_id in [slice_id for slice_id in self.queries if slice_id < first_kept]:
            add_queries(self.queries_expired, self.queries.pop(slice_id))

    def queries_since(self, since_slice: int | None) -> list[int]:
        """The queries of the calls since that time slice (None: since start)."""
        total = new_queries()
        if since_slice is None:
            add_queries(total, self.queries_expired)
        for slice_id, queries in list(self.queries.items()):
            if since_slice is None or slice_id >= since_slice:
                add_queries(total, queries)
        return total

    def _expire(self, histograms: list[Histogram | SealedHistogram]) -> None:
        self.expired = SealedHistogram(Histogram.merged([self.expired, *histograms]))

    def add_batch(self, slice_id: int, max_slices: int) -> None:
        """Move the batch's values into their slice's histogram."""
        values, errors = self.batch, self.batch_errors
        self.batch, self.batch_errors = [], 0
        self.slice(slice_id, max_slices).add_many(values, errors)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for snapshots: the histograms in their packed form."""
        return {
            "last_ns": self.last_ns,
            "expired": self.expired.packed(),
            "slices": [[slice_id, h.packed()] for slice_id, h in list(self.slices)],
            "queries_expired": list(self.queries_expired),
            "queries": [[slice_id, *queries] for slice_id, queries in list(self.queries.items())],
        }

    @staticmethod
    def parse_dict(data: Mapping[str, Any]) -> _SeriesData:
        """Read a series of another process (its :meth:`as_dict`); ValueError if it is not one."""
        try:
            slices = [(int(slice_id), SealedHistogram.unpack(h)) for slice_id, h in data["slices"]]
            queries = {
                int(slice_id): _queries(values) for slice_id, *values in data.get("queries", ())
            }
            expired_queries = _queries(data.get("queries_expired", new_queries()))
            return (
                int(data["last_ns"]),
                SealedHistogram.unpack(data["expired"]),
                slices,
                queries,
                expired_queries,
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"A series needs last_ns, expired and slices ({error!r}).") from None

    def merge_parsed(self, parsed: _SeriesData, max_slices: int) -> None:
        """Add a series that :meth:`parse_dict` read to this one."""
        last_ns, expired, theirs, queries, expired_queries = parsed
        add_queries(self.queries_expired, expired_queries)
        for slice_id, added in queries.items():
            self.merge_queries(slice_id, added)
        self.last_ns = max(self.last_ns, last_ns)
        by_id: dict[int, list[Histogram | SealedHistogram]] = {}
        for slice_id, histogram in [*self.slices, *theirs]:
            by_id.setdefault(slice_id, []).append(histogram)
        # A slice only one process has is kept as it came, sealed.
        ordered = [
            (slice_id, parts[0] if len(parts) == 1 else SealedHistogram(Histogram.merged(parts)))
            for slice_id, parts in sorted(by_id.items())
        ]
        self._expire([expired, *(h for _, h in ordered[:-max_slices])])
        self.slices = deque(ordered[-max_slices:])
        if self.slices:
            self._expire_queries(self.slices[0][0])

    @property
    def total(self) -> Histogram:
        """Every value since start."""
        return Histogram.merged([self.expired, *(h for _, h in list(self.slices))])

    def window(self, since_slice: int) -> Histogram:
        return Histogram.merged(h for slice_id, h in list(self.slices) if slice_id >= since_slice)


class SendSeries(Series):
    """A (signal, sender)'s send durations, and its receivers' series by receiver key."""

    __slots__ = ("by_id", "receivers")

    def __init__(self) -> None:
        super().__init__()
        self.receivers: dict[Any, Series] = {}
        # id(receiver key) -> (its Series, the key): the hot path's index, as hashing a code
        # object hashes its contents each time. The key kept here keeps its id unique.
        self.by_id: dict[int, tuple[Series, Any]] = {}


@dataclass(frozen=True, slots=True)
class SlowCall:
    """One of a receiver's slowest calls."""

    duration_ns: int
    event_id: str
    timestamp: float
    origin: str
    request_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "duration_ns": self.duration_ns,
            "event_id": self.event_id,
            "timestamp": self.timestamp,
            "origin": self.origin,
            "request_id": self.request_id,
        }


_tie_breaks = itertools.count()


class SlowestCalls:
    """A receiver's slowest calls, over all its series: at most ``kept`` of them."""

    __slots__ = ("floor", "heap", "kept")

    def __init__(self, kept: int) -> None:
        self.kept = kept
        # A min-heap of (duration, tie-break, SlowCall); the tie-break is unique, so SlowCalls
        # are never compared.
        self.heap: list[tuple[int, int, int, SlowCall]] = []
        self.floor = -1  # what a call must exceed to enter: the least kept, once full

    def note(self, duration: int, event: SignalEvent) -> None:
        """Keep this call if it is among the slowest (the caller checked ``floor``)."""
        origin = event.origin
        call = SlowCall(duration, event.uid, event.timestamp, origin.name, origin.request_id)
        # Negated, so that of equally slow calls the latest leaves first and the earliest stay.
        # A light send has no id: the unique counter keeps SlowCalls from being compared.
        entry = (duration, -event.id, next(_tie_breaks), call)
        heap = self.heap
        if len(heap) < self.kept:
            heapq.heappush(heap, entry)
        else:
            heapq.heapreplace(heap, entry)
        if len(heap) >= self.kept:
            self.floor = heap[0][0]

    def calls(self) -> list[SlowCall]:
        return [entry[3] for entry in list(self.heap)]

    def merge(self, calls: Iterable[SlowCall]) -> None:
        """Keep the slowest of these calls and the ones kept already."""
        merged = sorted([*self.calls(), *calls], key=_slowest_first)[: self.kept]
        self.heap = [
            (call.duration_ns, -index, next(_tie_breaks), call) for index, call in enumerate(merged)
        ]
        heapq.heapify(self.heap)
        if len(self.heap) >= self.kept:
            self.floor = self.heap[0][0]


@dataclass
class Storms:
    """How often a receiver ran more than the threshold inside one request or command."""

    requests: int = 0
    max_calls: int = 0


@dataclass(eq=False, repr=False)
class LatencyStore:
    """Every traced send's durations, by (signal, sender, receiver); bounded in keys."""

    window_seconds: int = 300
    slices: int = 30
    storm_threshold: int = 50
    slowest_kept: int = 10
    max_keys: int = 5000

    # (signal, sender key) -> its send durations and, by receiver key, its receivers' calls
    sends: dict[tuple[Any, Any], SendSeries] = field(default_factory=dict)
    # (signal, sender key, receiver key) -> the same receiver series, for readers
    calls: dict[tuple[Any, Any, Any], Series] = field(default_factory=dict)
    storms: dict[Any, Storms] = field(default_factory=dict)
    # receiver key -> its slowest calls (shown per receiver, so not kept per series)
    slowest: dict[Any, SlowestCalls] = field(default_factory=dict)
    overflow: int = 0  # sends and calls not kept because max_keys was reached
    # Other processes' snapshots left out of a merged store, each as why (see MergedStore).
    unreadable: list[str] = field(default_factory=list)
    version: int = 0  # bumped on every change, so readers can tell nothing happened
    slice_ns: int = field(init=False)

    def __post_init__(self) -> None:
        self.slice_ns = self.window_seconds * 1_000_000_000 // self.slices

    # -- in the recorder's drains -------------------------------------------------------------

    def record(self, event: SignalEvent) -> None:
        """Add a finished send and each of its receiver calls."""
        self.record_many((event,))

    def record_many(self, events: Iterable[SignalEvent]) -> None:
        """Add finished sends and their receiver calls.

        Values are grouped by series first (``Series.batch``) and bucketed series by series,
        once per time slice the batch spans.
        """
        touched: list[Series] = []
        slice_id = None
        slice_ns = self.slice_ns
        sends = self.sends
        for event in events:
            wall_ns = event.start_ns + WALL_OFFSET_NS
            if wall_ns // slice_ns != slice_id:
                if touched:
                    self._add_batches(touched, slice_id)
                    touched = []
                slice_id = wall_ns // slice_ns
            sender = event.sender_key
            if type(sender) is OpaqueSender:
                sender = sender.label
            signal = event.signal_key
            send_series = sends.get((signal, sender))
            if send_series is None:
                send_series = self._new_send(signal, sender)
                if send_series is None:
                    continue
            by_id = send_series.by_id
            failed = False
            made = (
                None
                if event.queries is None and event.nested_queries is None
                else iter(per_call(event.calls, event.queries, event.nested_queries))
            )
            for receiver, _, _, duration, _, error in event.calls:  # see events.Call
                call_queries = None if made is None else next(made)
                entry = by_id.get(id(receiver))
                if entry is not None:
                    series = entry[0]
                else:
                    series = send_series.receivers.get(receiver)  # an equal code object's
                    if series is None:
                        series = self._new_call(send_series, signal, sender, receiver)
                        if series is None:
                            continue
                    by_id[id(receiver)] = (series, receiver)
                batch = series.batch
                if not batch:
                    touched.append(series)
                batch.append(duration)
                if call_queries is not None and call_queries.total_count:
                    series.add_queries(slice_id, call_queries.total_count, call_queries.total_ns)
                if error is not None:
                    failed = True
                    series.batch_errors += 1
                slowest = series.slowest
                if slowest is not None and duration > slowest.floor:
                    slowest.note(duration, event)
                series.last_ns = wall_ns
            batch = send_series.batch
            if not batch:
                touched.append(send_series)
            batch.append(event.duration_ns)
            if failed:
                send_series.batch_errors += 1
            send_series.last_ns = wall_ns
        if touched:
            self._add_batches(touched, slice_id)
        self.version += 1

    def record_fold(
        self,
        signal: Any,
        sender: Any,
        sends: Histogram,
        receivers: list[tuple[Any, Histogram]],
        queries: Mapping[int, list[int]] | None = None,
    ) -> None:
        """Add what was folded into a tally since it was last read: its sends' durations and,
        per receiver key, its calls' (each a histogram), and their queries (a Queries list per
        id of the receiver key), to the current time slice."""
        wall_ns = time.time_ns()
        slice_id = wall_ns // self.slice_ns
        send_series = self.sends.get((signal, sender))
        if send_series is None:
            send_series = self._new_send(signal, sender)
            if send_series is None:
                return
        if sends.count:
            send_series.slice(slice_id, self.slices).merge(sends)
            send_series.last_ns = wall_ns
        by_id = send_series.by_id
        for receiver, added in receivers:
            entry = by_id.get(id(receiver))
            if entry is not None:
                series = entry[0]
            else:
                series = send_series.receivers.get(receiver)
                if series is None:
                    series = self._new_call(send_series, signal, sender, receiver)
                    if series is None:
                        continue
                by_id[id(receiver)] = (series, receiver)
            series.slice(slice_id, self.slices).merge(added)
            series.last_ns = wall_ns
            made = None if queries is None else queries.get(id(receiver))
            if made is not None and made[0]:
                series.merge_queries(slice_id, made)
        self.version += 1

    def _add_batches(self, touched: list[Series], slice_id: Any) -> None:
        slices = self.slices
        for series in touched:
            series.add_batch(slice_id, slices)

    def _full(self) -> bool:
        if len(self.calls) + len(self.sends) >= self.max_keys:
            self.overflow += 1
            return True
        return False

    def _new_send(self, signal: Any, sender: Any) -> SendSeries | None:
        if self._full():
            return None
        series = self.sends[(signal, sender)] = SendSeries()
        return series

    def _new_call(
        self, send_series: SendSeries, signal: Any, sender: Any, receiver: Any
    ) -> Series | None:
        if self._full():
            return None
        series = send_series.receivers[receiver] = self.calls[(signal, sender, receiver)] = Series()
        series.slowest = self._slowest_of(receiver)
        return series

    def _slowest_of(self, receiver: Any) -> SlowestCalls:
        slowest = self.slowest.get(receiver)
        if slowest is None:
            slowest = self.slowest[receiver] = SlowestCalls(self.slowest_kept)
        return slowest

    def record_origin(self, origin: Origin) -> list[tuple[str, int]]:
        """Note the receivers that ran more than the threshold for a finished request or
        command; returns them as (label, calls), most calls first."""
        storming = [
            (key, count)
            for key, count in origin.receiver_call_counts().items()
            if count > self.storm_threshold
        ]
        for key, count in storming:
            storms = self.storms.get(key)
            if storms is None:
                storms = self.storms[key] = Storms()
            storms.requests += 1
            storms.max_calls = max(storms.max_calls, count)
        if storming:
            self.version += 1
        return sorted(((receiver_label(key)[0], count) for key, count in storming), key=_by_count)

    def fingerprint(self) -> Hashable:
        """Equal for two reads only if the store did not change between them."""
        return self.version

    def clear(self) -> None:
        self.calls.clear()
        self.sends.clear()
        self.storms.clear()
        self.slowest.clear()
        self.overflow = 0
        self.version += 1

    # -- reading -----------------------------------------------------------------------------

    # What the keys are called. This store keys by what events keep (handles of signals and
    # sender classes, other senders, receivers' code objects); a MergedStore, built from other
    # processes' snapshots, by labels.

    def signal_name(self, key: Any) -> str:
        return key_label(key)

    def sender_name(self, key: Any) -> str:
        return key_label(key)

    def receiver_name(self, key: Any) -> tuple[str, str]:
        """(``module.qualname``, ``file:line``)."""
        return receiver_label(key)

    def snapshot(self, source: str) -> dict[str, Any]:
        """Everything this store holds, by label, as JSON-ready data another process can merge."""
        calls = []
        for (signal, sender, receiver), series in list(self.calls.items()):
            label, location = self.receiver_name(receiver)
            calls.append(
                {
                    "signal": self.signal_name(signal),
                    "sender": self.sender_name(sender),
                    "receiver": label,
                    "location": location,
                    **series.as_dict(),
                }
            )
        sends = [
            {"signal": self.signal_name(signal), "sender": self.sender_name(sender), **s.as_dict()}
            for (signal, sender), s in list(self.sends.items())
        ]
        storms = [
            {"receiver": self.receiver_name(key)[0], "requests": st.requests, "calls": st.max_calls}
            for key, st in list(self.storms.items())
        ]
        slowest = [
            {"receiver": self.receiver_name(key)[0], "calls": [c.as_dict() for c in s.calls()]}
            for key, s in list(self.slowest.items())
        ]
        return {
            "format": SNAPSHOT_FORMAT,
            "source": source,
            "version": self.version,
            "window_seconds": self.window_seconds,
            "slices": self.slices,
            "overflow": self.overflow,
            "calls": calls,
            "sends": sends,
            "storms": storms,
            "slowest": slowest,
        }

    def since_slice(self, now: float | None = None) -> int:
        """The first time slice inside the rolling window that ends ``now``."""
        now_ns = time.time_ns() if now is None else int(now * 1e9)
        return (now_ns - self.window_seconds * 1_000_000_000) // self.slice_ns + 1

    def table(
        self,
        query: TableQuery,
        event_filter: EventFilter | None = None,
        events: Iterable[SignalEvent] = (),
        slow_ns: int | None = None,
    ) -> list[TableRow]:
        """The rows of a latency table, sorted.

        Filters on sender, signal and receiver select among the stored series; filters on
        what only single events carry (path, process, minimum duration, errors only) are
        answered from ``events``, the recent-events buffer, instead. A receiver's storms are
        this store's either way: its rows are matched to them by label.
        """
        if event_filter is not None and not event_filter.active:
            event_filter = None
        if event_filter is not None and event_filter.needs_events:
            source = LatencyStore(
                window_seconds=self.window_seconds,
                slices=self.slices,
                storm_threshold=self.storm_threshold,
                max_keys=self.max_keys,
            )
            for event in events:
                if event_filter.matches(event.as_row()):
                    source.record(event)
            # Each store names only its own keys: this one's may be labels (a MergedStore's),
            # the source's are what events keep.
            buffered = source.table(query, event_filter.without_event_fields(), (), slow_ns)
            if query.group == "receiver":
                self._attach_storms(buffered)
            return buffered
        since = self.since_slice() if query.window else None
        rows: dict[str, TableRow] = {}
        if query.group == "receiver":
            for (signal, sender, receiver), series in list(self.calls.items()):
                label, location = self.receiver_name(receiver)
                if event_filter is not None and not event_filter.matches_labels(
                    self.signal_name(signal), self.sender_name(sender), label
                ):
                    continue
                _add(rows, label, series, since, location=location)
            self._attach_storms(rows.values())
        else:
            receivers_by_send = self._receivers_by_send() if event_filter else {}
            for (signal, sender), series in list(self.sends.items()):
                signal_name, sender_name = self.signal_name(signal), self.sender_name(sender)
                if event_filter is not None and not any(
                    event_filter.matches_labels(signal_name, sender_name, receiver)
                    for receiver in receivers_by_send.get((signal, sender), ("",))
                ):
                    continue
                _add(rows, signal_name if query.group == "signal" else sender_name, series, since)
        result = [row for row in rows.values() if row.histogram.count]
        if slow_ns is not None:
            for row in result:
                row.slow = row.histogram.percentile(95) >= slow_ns
        result.sort(key=lambda row: row.name.lower())
        result.sort(key=lambda row: row.sort_value(query.sort), reverse=query.descending)
        return result

    def _attach_storms(self, rows: Iterable[TableRow]) -> None:
        """Give each receiver row the storms this store counted for the receivers it names."""
        by_label: dict[str, Storms] = {}
        for row in rows:
            row.storms = Storms()
            by_label[row.name] = row.storms
        for receiver, storms in list(self.storms.items()):
            found = by_label.get(self.receiver_name(receiver)[0])
            if found is not None:
                found.requests += storms.requests
                found.max_calls = max(found.max_calls, storms.max_calls)

    def _receivers_by_send(self) -> dict[tuple[Any, Any], list[str]]:
        labels: dict[tuple[Any, Any], list[str]] = {}
        for signal, sender, receiver in list(self.calls):
            labels.setdefault((signal, sender), []).append(self.receiver_name(receiver)[0])
        return labels

    def receiver_keys(self, label: str) -> list[Any]:
        """The receiver keys (code objects or classes) labelled ``label``."""
        keys = {receiver for _, _, receiver in list(self.calls)}
        return [key for key in keys if self.receiver_name(key)[0] == label]

    def _receiver_series(self, label: str) -> list[Series]:
        keys = set(self.receiver_keys(label))
        return [series for (_, _, key), series in list(self.calls.items()) if key in keys]

    def receiver_histogram(self, label: str, window: bool = False) -> Histogram:
        """All calls of the receivers labelled ``label``, on every signal and sender."""
        since = self.since_slice() if window else None
        return Histogram.merged(
            series.total if since is None else series.window(since)
            for series in self._receiver_series(label)
        )

    def slowest_calls(self, label: str) -> list[SlowCall]:
        calls = []
        for key in self.receiver_keys(label):
            slowest = self.slowest.get(key)
            if slowest is not None:
                calls += slowest.calls()
        return sorted(calls, key=_slowest_first)[: self.slowest_kept]

    def signal_usage(self) -> dict[Any, tuple[int, int, float]]:
        """Per signal: sends, sends that reached no receiver, last send's wall-clock time."""
        usage: dict[Any, tuple[int, int, float]] = {}
        with_receivers = {(signal, sender) for signal, sender, _ in list(self.calls)}
        for (signal, sender), series in list(self.sends.items()):
            count, empty, last = usage.get(signal, (0, 0, 0.0))
            if (signal, sender) not in with_receivers:
                empty += series.total.count
            usage[signal] = (count + series.total.count, empty, max(last, series.last_ns / 1e9))
        return usage


def _add(
    rows: dict[str, TableRow], name: str, series: Series, since: int | None, location: str = ""
) -> None:
    row = rows.get(name)
    if row is None:
        row = rows[name] = TableRow(name, Histogram(), location)
    row.histogram.merge(series.total if since is None else series.window(since))
    add_queries(row.queries, series.queries_since(since))
    row.last = max(row.last, series.last_ns / 1e9)


def _slowest_first(call: SlowCall) -> tuple[int, float]:
    # Among equally slow calls the earliest first: the one a store keeps when it must choose.
    return (-call.duration_ns, call.timestamp)


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return (-item[1], item[0])
