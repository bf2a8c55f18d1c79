"""Log-bucketed latency histograms.

A :class:`Histogram` keeps counts in HDR-style buckets: values below 128 ns exactly, larger
ones in 64 linear sub-buckets per power of two, so any value is within 1/128 (0.8%) of its
bucket's midpoint. Memory is bounded by the number of buckets (at most a few thousand, whatever
the volume) and two histograms merge by adding counts, so processes can be combined.
:class:`SealedHistogram` is another process's, read from its packed form.

In capture/, below the statistics that keep them (record/stats/), because a folded send bins
its receivers' durations into these buckets on the sending thread (tally.py).
"""

from __future__ import annotations

import itertools
import math
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from typing import Any

# Values below 2**_EXACT_BITS ns get a bucket each; above, 2**_SUB_BITS buckets per power of two.
_SUB_BITS = 6
_EXACT_BITS = _SUB_BITS + 1
_EXACT = 1 << _EXACT_BITS
# Above any duration: the minimum of an empty histogram.
_NO_VALUE = 1 << 64

PERCENTILES = (50, 95, 99)


def bucket_index(value: int) -> int:
    """The bucket a non-negative number of nanoseconds falls in."""
    if value < _EXACT:
        return max(value, 0)
    shift = value.bit_length() - _EXACT_BITS
    return (shift << _SUB_BITS) + (value >> shift)


def bucket_bounds(index: int) -> tuple[int, int]:
    """The values a bucket holds: ``lower <= value < upper``."""
    if index < _EXACT:
        return index, index + 1
    shift = (index >> _SUB_BITS) - 1
    top = index - (shift << _SUB_BITS)
    return top << shift, (top + 1) << shift


def bucket_middle(index: int) -> int:
    """What a bucket stands for in a percentile: the middle of its range."""
    lower, upper = bucket_bounds(index)
    return (lower + upper - 1) // 2


# A histogram kept as a list, for the sending thread to add to in place with no call (see
# events.Tally): [sum_ns, max_ns, {bucket index: count}]. Its count is its buckets', and its
# least value its lowest bucket's. Its adders inline bucket_index(); a drain reads what was
# added with growth().
SUM, MAX, BUCKETS = range(3)


def new_counts() -> list[Any]:
    return [0, 0, {}]


def counts_histogram(buckets: dict[int, int], sum_ns: int, max_ns: int) -> Histogram:
    """The histogram of these counts (see new_counts()), its least value its lowest bucket's."""
    lowest = bucket_bounds(min(buckets))[0] if buckets else 0
    return Histogram.of_counts(buckets, sum_ns, min(lowest, max_ns), max_ns)


def growth(
    counts: list[Any], seen: tuple[int, dict[int, int]] | None
) -> tuple[Histogram, tuple[int, dict[int, int]]]:
    """What was added to ``counts`` (see new_counts()) since ``seen`` (an earlier return's
    second value, None for everything), and what to pass next time. Read while another thread
    adds: each value is counted by exactly one read (its sum may lag a read behind). The
    delta's greatest value is the whole list's."""
    buckets = dict(counts[BUCKETS])  # one step under the GIL: a consistent copy
    sum_ns = counts[SUM]
    if seen is None:
        added = dict(buckets)
        added_ns = sum_ns
    else:
        seen_ns, seen_buckets = seen
        before = seen_buckets.get
        added = {
            index: count - before(index, 0)
            for index, count in buckets.items()
            if count != before(index, 0)
        }
        added_ns = sum_ns - seen_ns
    return counts_histogram(added, added_ns, counts[MAX]), (sum_ns, buckets)


# Values a histogram keeps aside before putting them in buckets, at most (see add_many()).
UNBUCKETED_LIMIT = 512


def _bucket_into(buckets: dict[int, int], values: list[int]) -> None:
    """Add non-negative values to ``buckets``: sorted (in C), each bucket's values are a run
    found by bisection, so the Python work is per bucket rather than per value."""
    values = sorted(values)
    get = buckets.get
    end = len(values)
    first = 0
    while first < end:
        value = values[first]
        if value < _EXACT:
            index = upper = value
        else:
            shift = value.bit_length() - _EXACT_BITS
            index = (shift << _SUB_BITS) + (value >> shift)
            upper = (((value >> shift) + 1) << shift) - 1
        after = bisect_right(values, upper, first + 1)
        buckets[index] = get(index, 0) + after - first
        first = after


class _HistogramReading:
    """What every histogram answers from its totals and its counts per bucket."""

    __slots__ = ()

    count: int
    errors: int
    sum_ns: int
    max_ns: int
    _min_ns: int

    def counts(self) -> dict[int, int]:
        raise NotImplementedError

    @property
    def min_ns(self) -> int:
        return self._min_ns if self.count else 0

    @property
    def mean_ns(self) -> float:
        return self.sum_ns / self.count if self.count else 0.0

    def percentile(self, percent: float) -> int:
        """The nearest-rank percentile, within 0.8% of the exact value (0 when empty)."""
        if not self.count:
            return 0
        rank = max(1, math.ceil(percent / 100 * self.count))
        seen = 0
        counts = self.counts()
        for index in sorted(counts):
            seen += counts[index]
            if seen >= rank:
                # The extremes are known exactly; the bucket's middle could lie beyond them.
                return min(max(bucket_middle(index), self.min_ns), self.max_ns)
        return self.max_ns

    def summary(self) -> dict[str, Any]:
        """count, errors, mean, p50, p95, p99, max (and min), durations in nanoseconds."""
        return {
            "count": self.count,
            "errors": self.errors,
            "mean_ns": round(self.mean_ns),
            **{f"p{percent}_ns": self.percentile(percent) for percent in PERCENTILES},
            "min_ns": self.min_ns,
            "max_ns": self.max_ns,
        }

    def shape(self, bins: int = 24) -> list[int]:
        """Counts in ``bins`` equal steps of log(duration) between the extremes, for a sparkline."""
        if not self.count:
            return []
        low = math.log(max(self.min_ns, 1))
        high = math.log(max(self.max_ns, 1))
        counts = [0] * bins
        if high - low < 1e-9:
            counts[bins // 2] = self.count
            return counts
        step = (high - low) / bins
        for index, count in self.counts().items():
            value = max(bucket_middle(index), 1)
            counts[min(bins - 1, max(0, int((math.log(value) - low) / step)))] += count
        return counts

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: totals and ``[lower_ns, upper_ns, count]`` per non-empty bucket."""
        counts = self.counts()
        return {
            # From the same counts as the buckets, which the recorder's drain may be adding to
            # on another thread: from_dict() checks that they agree.
            "count": sum(counts.values()),
            "errors": self.errors,
            "sum_ns": self.sum_ns,
            "min_ns": self.min_ns,
            "max_ns": self.max_ns,
            "buckets": [[*bucket_bounds(index), counts[index]] for index in sorted(counts)],
        }

    def packed(self) -> list[int]:
        """The compact form snapshots carry: count, errors, min_ns, max_ns, sum_ns, then
        (bucket index, count) pairs. :meth:`SealedHistogram.unpack` reads it back."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _HistogramReading):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Histogram count={self.count} p50={self.percentile(50)}ns max={self.max_ns}ns>"


class Histogram(_HistogramReading):
    """Counts of durations (in nanoseconds) in log-linear buckets; mergeable and bounded."""

    __slots__ = ("_min_ns", "_unbucketed", "buckets", "count", "errors", "max_ns", "sum_ns")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        # Values counted in the totals but not yet in ``buckets`` (see add_many()); readers
        # count them without moving them, so only the adding thread ever changes ``buckets``.
        self._unbucketed: list[int] = []
        self.count = 0
        self.errors = 0
        self.sum_ns = 0
        self._min_ns = _NO_VALUE
        self.max_ns = 0

    def add(self, value: int, error: bool = False) -> None:
        # bucket_index(), inlined: this runs for every send and every receiver call.
        if value < _EXACT:
            if value < 0:
                value = 0
            index = value
        else:
            shift = value.bit_length() - _EXACT_BITS
            index = (shift << _SUB_BITS) + (value >> shift)
        buckets = self.buckets
        buckets[index] = buckets.get(index, 0) + 1
        self.count += 1
        self.sum_ns += value
        if value > self.max_ns:
            self.max_ns = value
        if value < self._min_ns:
            self._min_ns = value
        if error:
            self.errors += 1

    def add_many(self, values: list[int], errors: int = 0) -> None:
        """Add non-negative values at once; ``errors`` of them came from failed calls.

        They are counted in the totals now and put in buckets ``UNBUCKETED_LIMIT`` at a time
        (or by flush()): the more values a batch holds, the more of them share a bucket.
        """
        if not values:
            return
        self.count += len(values)
        self.sum_ns += sum(values)
        self.max_ns = max(self.max_ns, max(values))
        self._min_ns = min(self._min_ns, min(values))
        self.errors += errors
        unbucketed = self._unbucketed
        unbucketed += values
        if len(unbucketed) >= UNBUCKETED_LIMIT:
            self.flush()

    def flush(self) -> None:
        """Put the values add_many() left aside into their buckets (by the adding thread)."""
        values, self._unbucketed = self._unbucketed, []
        _bucket_into(self.buckets, values)

    def counts(self) -> dict[int, int]:
        """Count per bucket index, of every value added (safe from any thread)."""
        unbucketed = list(self._unbucketed)  # one step under the GIL: a consistent copy
        if not unbucketed:
            return self.buckets
        counts = dict(self.buckets)
        _bucket_into(counts, unbucketed)
        return counts

    def packed(self) -> list[int]:
        # A copy first: the recorder's drain may be adding meanwhile (list() of a dict's items
        # is one step under the GIL). The count is the buckets', as in to_dict().
        pairs = list(itertools.chain.from_iterable(list(self.counts().items())))
        return [sum(pairs[1::2]), self.errors, self.min_ns, self.max_ns, self.sum_ns, *pairs]

    def merge(self, other: _HistogramReading) -> None:
        """Add ``other``'s counts to this histogram."""
        if not other.count:
            return
        buckets = self.buckets
        # A copy: the recorder's drain may be adding to ``other`` meanwhile (list() of a dict's
        # items is one step under the GIL).
        counts = list(other.counts().items())
        if buckets:
            for index, count in counts:
                buckets[index] = buckets.get(index, 0) + count
        else:
            buckets.update(counts)
        self._min_ns = min(self._min_ns, other._min_ns)
        self.max_ns = max(self.max_ns, other.max_ns)
        self.count += other.count
        self.sum_ns += other.sum_ns
        self.errors += other.errors

    @classmethod
    def of_counts(
        cls, counts: dict[int, int], sum_ns: int, min_ns: int, max_ns: int, errors: int = 0
    ) -> Histogram:
        """A histogram of these bucket counts (by index) and totals."""
        histogram = cls()
        histogram.buckets = counts
        histogram.count = sum(counts.values())
        histogram.sum_ns = sum_ns
        histogram._min_ns = min_ns if histogram.count else _NO_VALUE
        histogram.max_ns = max_ns
        histogram.errors = errors
        return histogram

    @classmethod
    def merged(cls, histograms: Iterable[_HistogramReading]) -> Histogram:
        total = cls()
        for histogram in histograms:
            total.merge(histogram)
        return total

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        """The histogram that :meth:`to_dict` described (from this or another process)."""
        histogram = cls()
        for lower, upper, count in data["buckets"]:
            index = bucket_index(int(lower))
            if bucket_bounds(index) != (int(lower), int(upper)):
                raise ValueError(f"[{lower}, {upper}) is not a bucket of this histogram layout.")
            histogram.buckets[index] = histogram.buckets.get(index, 0) + int(count)
        if sum(histogram.buckets.values()) != int(data["count"]):
            raise ValueError("The bucket counts do not add up to the histogram's count.")
        histogram.count = int(data["count"])
        histogram.errors = int(data["errors"])
        histogram.sum_ns = int(data["sum_ns"])
        histogram._min_ns = int(data["min_ns"]) if histogram.count else _NO_VALUE
        histogram.max_ns = int(data["max_ns"])
        return histogram


class SealedHistogram(_HistogramReading):
    """A histogram no value will be added to, in one array of integers.

    The statistics keep one histogram per series per time slice: a slice that is over is kept
    in this form, less than half a :class:`Histogram`'s size (which has a dictionary, and an
    integer object per bucket). Reading it is the same; to add to it, merge it into a Histogram.
    """

    __slots__ = ("_data", "sum_ns")

    # _data: count, errors, min_ns, max_ns, then (bucket index, count) pairs. The sum may
    # outgrow 64 bits over a long life, so it stays a Python integer.
    def __init__(self, histogram: _HistogramReading) -> None:
        counts = histogram.counts()
        self._data = array("q", (histogram.count, histogram.errors, histogram.min_ns))
        self._data.append(histogram.max_ns)
        self._data.extend(itertools.chain.from_iterable(counts.items()))
        self.sum_ns = histogram.sum_ns

    @property
    def count(self) -> int:  # type: ignore[override]
        return self._data[0]

    @property
    def errors(self) -> int:  # type: ignore[override]
        return self._data[1]

    @property
    def _min_ns(self) -> int:  # type: ignore[override]
        return self._data[2] if self._data[0] else _NO_VALUE

    @property
    def max_ns(self) -> int:  # type: ignore[override]
        return self._data[3]

    def counts(self) -> dict[int, int]:
        data = self._data
        return dict(zip(data[4::2], data[5::2], strict=True))

    def packed(self) -> list[int]:
        values = self._data.tolist()
        values.insert(4, self.sum_ns)
        return values

    @classmethod
    def unpack(cls, values: Any) -> SealedHistogram:
        """The histogram that :meth:`packed` described (in this or another process); ValueError
        if ``values`` is not one. Checked in C, without a Python step per bucket."""
        if not isinstance(values, list) or len(values) < 5 or len(values) % 2 == 0:
            raise ValueError("A packed histogram is 5 totals, then (bucket, count) pairs.")
        try:
            data = array("q", values[:4])
            data.extend(values[5:])
            sum_ns = values[4]
            if type(sum_ns) is not int:
                raise TypeError(f"its sum is {type(sum_ns).__name__}")
        except (TypeError, OverflowError) as error:
            raise ValueError(f"A packed histogram holds integers only ({error}).") from None
        if min(data) < 0 or sum_ns < 0:
            raise ValueError("A packed histogram holds no negative numbers.")
        indexes = data[4::2]
        if len(set(indexes)) != len(indexes):
            raise ValueError("A packed histogram names each bucket once.")
        if sum(data[5::2]) != data[0]:
            raise ValueError("The bucket counts do not add up to the histogram's count.")
        histogram = cls.__new__(cls)
        histogram._data, histogram.sum_ns = data, sum_ns
        return histogram

    def flush(self) -> None:
        """Nothing to put in buckets: a sealed histogram holds no values aside."""
