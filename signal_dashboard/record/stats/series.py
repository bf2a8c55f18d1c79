"""What the latency store keeps per key: a series of durations (per time slice of the rolling
window, and since start) with the queries of its calls, a receiver's slowest calls, and its
storms. Only the stores (store.py, merge.py) make them; table rows carry their storms.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...capture.histogram import Histogram, SealedHistogram

if TYPE_CHECKING:
    from ...capture.events import SignalEvent


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
        merged = sorted([*self.calls(), *calls], key=slowest_first)[: self.kept]
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


def slowest_first(call: SlowCall) -> tuple[int, float]:
    # Among equally slow calls the earliest first: the one a store keeps when it must choose.
    return (-call.duration_ns, call.timestamp)
