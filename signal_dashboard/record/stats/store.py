"""The latency store: per (signal, sender, receiver), a histogram since start and one per time
slice of the rolling window; per receiver, its slowest calls and "storms" (when it ran more than
``STORM_THRESHOLD`` times inside one request). The series it keeps are series.py's.

Recording runs off the sending thread, in the recorder's drains: a batch of sends is grouped by
series first, and each series adds its values to its histogram in one go. No labels are made
then: only when a table is asked for. The store is this process's; merge.py combines other
processes' snapshots of it.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...capture.events import WALL_OFFSET_NS
from ...capture.histogram import Histogram
from ...capture.labels import OpaqueSender, key_label, receiver_label
from ...capture.queries import per_call
from .series import (
    SendSeries,
    Series,
    SlowCall,
    SlowestCalls,
    Storms,
    add_queries,
    slowest_first,
)
from .table import TableRow

if TYPE_CHECKING:
    from ...capture.context import Origin
    from ...capture.events import SignalEvent
    from ..filters import EventFilter
    from .table import TableQuery

# The layout of LatencyStore.snapshot(): a process reads only snapshots of its own format (the
# histograms are packed, so both sides must share the bucket layout of capture/histogram.py).
SNAPSHOT_FORMAT = 2


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
        return sorted(calls, key=slowest_first)[: self.slowest_kept]

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


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return (-item[1], item[0])
