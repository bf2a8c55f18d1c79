"""Latency statistics: histogram accuracy and merging, the latency table, storms."""

from __future__ import annotations

import json
import math
import os
import random
import tracemalloc
from typing import Any

import pytest
from django.dispatch import Signal
from django.test import override_settings

from signal_dashboard.capture.context import Origin, current_origin
from signal_dashboard.capture.histogram import (
    UNBUCKETED_LIMIT,
    Histogram,
    SealedHistogram,
    bucket_bounds,
    bucket_index,
)
from signal_dashboard.record.filters import EventFilter
from signal_dashboard.record.stats.merge import MergedStore
from signal_dashboard.record.stats.series import Series, Storms
from signal_dashboard.record.stats.store import LatencyStore
from signal_dashboard.record.stats.table import TableQuery
from signal_dashboard.tracing import capture

oven = Signal()
till = Signal()


class Pizza:
    pass


class Pasta:
    pass


def exact_percentile(values: list[int], percent: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percent / 100 * len(ordered))) - 1]


# -- Histogram ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_percentiles_within_two_percent_of_exact_on_random_data(seed: int) -> None:
    rng = random.Random(seed)
    # Log-normal around 1 ms with a long tail, plus a few sub-microsecond values.
    values = [int(rng.lognormvariate(math.log(1e6), 1.5)) for _ in range(20_000)]
    values += [rng.randrange(0, 500) for _ in range(200)]
    histogram = Histogram()
    for value in values:
        histogram.add(value)
    for percent in (1, 10, 50, 90, 95, 99, 99.9):
        exact = exact_percentile(values, percent)
        assert abs(histogram.percentile(percent) - exact) <= 0.02 * exact, percent
    assert histogram.count == len(values)
    assert histogram.max_ns == max(values)
    assert histogram.min_ns == min(values)
    assert histogram.mean_ns == pytest.approx(sum(values) / len(values))


def test_every_value_lies_in_its_bucket_and_buckets_are_narrow() -> None:
    for value in [*range(300), *(int(1.37**n) for n in range(130))]:
        lower, upper = bucket_bounds(bucket_index(value))
        assert lower <= value < upper
        assert upper - lower <= max(1, lower / 64)


def test_memory_is_bounded_whatever_the_volume() -> None:
    histogram = Histogram()
    for value in range(0, 10**9, 9973):
        histogram.add(value)
    # 128 exact buckets, then 64 per power of two up to 2**30.
    assert len(histogram.buckets) <= 128 + 64 * 24


def test_adding_a_batch_equals_adding_its_values_one_by_one() -> None:
    rng = random.Random(3)
    # Exact buckets, both edges of wide buckets, repeats, and a long tail, in no order.
    values = [*range(140), *(1 << n for n in range(7, 40)), *((1 << n) - 1 for n in range(7, 40))]
    values += [int(rng.lognormvariate(math.log(5e4), 2)) for _ in range(3000)]
    values += [1024] * 50
    rng.shuffle(values)
    one_by_one, batched = Histogram(), Histogram()
    for value in values:
        one_by_one.add(value)
    batched.add_many(values[:1000], errors=3)
    batched.add_many(values[1000:])
    assert batched.counts() == one_by_one.buckets
    assert (batched.count, batched.sum_ns, batched.min_ns, batched.max_ns, batched.errors) == (
        one_by_one.count,
        one_by_one.sum_ns,
        one_by_one.min_ns,
        one_by_one.max_ns,
        3,
    )


def test_a_batch_is_bucketed_once_enough_values_wait_and_read_before() -> None:
    histogram = Histogram()
    histogram.add_many([1000] * (UNBUCKETED_LIMIT - 1))
    assert histogram.buckets == {}  # set aside, yet read as counted:
    assert histogram.counts() == {bucket_index(1000): UNBUCKETED_LIMIT - 1}
    assert histogram.percentile(50) == pytest.approx(1000, rel=0.01)
    assert histogram.to_dict()["buckets"] == [
        [*bucket_bounds(bucket_index(1000)), UNBUCKETED_LIMIT - 1]
    ]
    merged = Histogram.merged([histogram])
    assert merged.buckets == {bucket_index(1000): UNBUCKETED_LIMIT - 1}
    histogram.add_many([5000])
    assert histogram.buckets == {bucket_index(1000): UNBUCKETED_LIMIT - 1, bucket_index(5000): 1}
    assert histogram.counts() is histogram.buckets


def test_a_histogram_read_while_values_arrive_still_round_trips() -> None:
    histogram = Histogram()
    histogram.add_many([1000, 2000])
    histogram.count += 1  # what another thread's add_many() has counted but not yet set aside
    copy = Histogram.from_dict(histogram.to_dict())
    assert copy.counts() == histogram.counts()


def test_a_slice_that_is_over_is_sealed_with_its_values_in_buckets() -> None:
    series = Series()
    series.slice(1, 30).add_many([1000, 2000])
    assert series.slices[0][1].buckets == {}
    series.slice(2, 30)
    over = series.slices[0][1]
    assert isinstance(over, SealedHistogram)
    assert over.counts() == {bucket_index(1000): 1, bucket_index(2000): 1}
    assert isinstance(series.slices[1][1], Histogram)
    assert series.slice(2, 30) is series.slices[1][1]


def test_a_sealed_histogram_reads_as_the_histogram_it_was_made_from() -> None:
    rng = random.Random(11)
    histogram = Histogram()
    for index in range(3000):
        histogram.add(int(rng.lognormvariate(10, 1.5)), error=index % 13 == 0)
    histogram.add_many([5, 70_000, 3_000_000], errors=1)
    sealed = SealedHistogram(histogram)
    assert sealed.to_dict() == histogram.to_dict()
    assert sealed == histogram
    assert sealed.summary() == histogram.summary()
    assert sealed.shape() == histogram.shape()
    assert Histogram.merged([sealed, sealed]).count == 2 * histogram.count
    assert SealedHistogram(sealed) == sealed


def test_an_empty_sealed_histogram_reads_as_empty() -> None:
    sealed = SealedHistogram(Histogram())
    assert sealed.summary() == Histogram().summary()
    total = Histogram.merged([sealed, SealedHistogram(Histogram.merged([]))])
    assert (total.count, total.min_ns) == (0, 0)
    total.add(40)
    assert total.min_ns == 40


def test_a_sealed_histogram_keeps_a_sum_past_64_bits() -> None:
    histogram = Histogram()
    histogram.add_many([2**62, 2**62, 2**62])
    sealed = SealedHistogram(histogram)
    assert sealed.sum_ns == 3 * 2**62
    assert sealed.max_ns == 2**62


def test_sealed_slices_take_a_fraction_of_the_memory() -> None:
    def allocated(make: Any) -> int:
        tracemalloc.start()
        try:
            kept = [make(index) for index in range(2000)]
            size = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert len(kept) == 2000
        return size

    def live(index: int) -> Histogram:
        histogram = Histogram()
        histogram.add_many([1000 + index, 2000 + index, 40_000 + index])
        histogram.flush()
        return histogram

    assert allocated(lambda index: SealedHistogram(live(index))) < allocated(live) / 2


def test_merge_equals_the_histogram_of_all_values() -> None:
    rng = random.Random(7)
    first, second, everything = Histogram(), Histogram(), Histogram()
    for index in range(5000):
        value = int(rng.expovariate(1 / 50_000))
        failed = index % 17 == 0
        (first if index % 3 else second).add(value, failed)
        everything.add(value, failed)
    merged = Histogram.merged([first, second])
    assert merged == everything
    assert merged.errors == everything.errors == len(range(0, 5000, 17))
    assert merged.summary() == everything.summary()


def test_merging_an_empty_histogram_changes_nothing() -> None:
    histogram = Histogram()
    histogram.add(1000)
    histogram.merge(Histogram())
    assert (histogram.count, histogram.min_ns, histogram.max_ns) == (1, 1000, 1000)
    empty = Histogram()
    empty.merge(histogram)
    assert (empty.count, empty.min_ns, empty.max_ns) == (1, 1000, 1000)


def test_empty_histogram_summary_is_zeros() -> None:
    assert Histogram().summary() == {
        "count": 0,
        "errors": 0,
        "mean_ns": 0,
        "p50_ns": 0,
        "p95_ns": 0,
        "p99_ns": 0,
        "min_ns": 0,
        "max_ns": 0,
    }


def test_dict_form_round_trips_through_json() -> None:
    histogram = Histogram()
    for value in (5, 130, 4_000, 4_001, 9_999_999, 10**12):
        histogram.add(value, error=value == 130)
    again = Histogram.from_dict(json.loads(json.dumps(histogram.to_dict())))
    assert again == histogram
    assert again.percentile(50) == histogram.percentile(50)
    assert again.errors == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda data: data["buckets"][0].__setitem__(1, 7), "is not a bucket"),
        (lambda data: data.__setitem__("count", 99), "do not add up"),
    ],
)
def test_dict_form_of_another_layout_is_refused(change: Any, message: str) -> None:
    histogram = Histogram()
    histogram.add(5)
    histogram.add(4_000)
    data = histogram.to_dict()
    change(data)
    with pytest.raises(ValueError, match=message):
        Histogram.from_dict(data)


def test_packed_form_round_trips_through_json() -> None:
    histogram = Histogram()
    histogram.add_many([5, 130, 4_000, 4_001, 9_999_999], errors=1)  # left aside, unbucketed
    histogram.add(10**12)
    packed = json.loads(json.dumps(histogram.packed()))
    assert packed[:5] == [6, 1, 5, 10**12, histogram.sum_ns]
    again = SealedHistogram.unpack(packed)
    assert again == histogram
    assert again.percentile(50) == histogram.percentile(50)
    assert SealedHistogram.unpack(again.packed()) == histogram
    assert SealedHistogram.unpack(Histogram().packed()).count == 0


@pytest.mark.parametrize(
    ("packed", "message"),
    [
        ({"count": 1}, "5 totals"),
        ([1, 0, 5, 5], "5 totals"),
        ([1, 0, 5, 5, 5, 5], "5 totals"),
        ([1, 0, 5, 5, 5, 5, "1"], "integers only"),
        ([1, 0, 5, 5, 5.0, 5, 1], "integers only"),
        ([1, 0, 5, 5, 5, 2**64, 1], "integers only"),
        ([1, 0, 5, 5, 5, -5, 1], "no negative"),
        ([2, 0, 5, 5, 10, 5, 1, 5, 1], "each bucket once"),
        ([3, 0, 5, 5, 5, 5, 1], "do not add up"),
    ],
)
def test_packed_form_that_is_not_a_histogram_is_refused(packed: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SealedHistogram.unpack(packed)


def test_shape_counts_every_value() -> None:
    histogram = Histogram()
    for value in (1_000, 2_000, 50_000, 1_000_000):
        histogram.add(value)
    shape = histogram.shape(bins=10)
    assert len(shape) == 10
    assert sum(shape) == 4
    assert shape[0] >= 1
    assert shape[-1] >= 1


# -- The store and its tables -------------------------------------------------------------------


def fast(sender: Any, **kwargs: Any) -> None:
    pass


def failing(sender: Any, **kwargs: Any) -> None:
    raise ValueError("burnt")


@pytest.fixture
def store() -> LatencyStore:
    return LatencyStore(window_seconds=300, storm_threshold=3)


@pytest.fixture
def receivers() -> Any:
    oven.connect(fast)
    till.connect(failing)
    yield
    oven.disconnect(fast)
    till.disconnect(failing)


def fill(store: LatencyStore, events: list[Any], durations: dict[str, list[int]]) -> None:
    """Record ``events`` after setting their receivers' durations, in order, per label."""
    queues = {label: list(values) for label, values in durations.items()}
    for event in events:
        for index, call in enumerate(event.calls):
            label = call[0].co_qualname
            if label in queues:
                event.calls[index] = (call[0], *call[1:3], queues[label].pop(0), *call[4:])
        store.record(event)


def send_mix() -> list[Any]:
    with capture() as events:
        for _ in range(4):
            oven.send(sender=Pizza)
        oven.send(sender=Pasta)
        for _ in range(2):
            till.send_robust(sender=Pizza)
    return list(events)


def test_table_groups_by_receiver_signal_and_sender(store: LatencyStore, receivers: None) -> None:
    fill(store, send_mix(), {"fast": [10, 20, 30, 40, 500], "failing": [7_000, 9_000]})
    by_receiver = {row.name: row for row in store.table(TableQuery(group="receiver"))}
    assert set(by_receiver) == {"tests.test_stats.fast", "tests.test_stats.failing"}
    assert by_receiver["tests.test_stats.fast"].histogram.count == 5
    assert by_receiver["tests.test_stats.fast"].histogram.max_ns == 500
    assert by_receiver["tests.test_stats.failing"].histogram.errors == 2
    assert by_receiver["tests.test_stats.failing"].location.endswith(
        "test_stats.py:" + str(failing.__code__.co_firstlineno)
    )

    by_signal = {row.name: row.histogram.count for row in store.table(TableQuery(group="signal"))}
    assert by_signal == {"tests.test_stats.oven": 5, "tests.test_stats.till": 2}
    by_sender = {row.name: row.histogram.count for row in store.table(TableQuery(group="sender"))}
    assert by_sender == {"tests.test_stats.Pizza": 6, "tests.test_stats.Pasta": 1}


@pytest.mark.parametrize(
    ("sort", "descending", "expected"),
    [
        ("p95", True, ["failing", "fast"]),
        ("p95", False, ["fast", "failing"]),
        ("count", True, ["fast", "failing"]),
        ("errors", True, ["failing", "fast"]),
        ("name", False, ["failing", "fast"]),
        ("max", False, ["fast", "failing"]),
    ],
)
def test_table_sorts_by_any_column(
    store: LatencyStore, receivers: None, sort: str, descending: bool, expected: list[str]
) -> None:
    fill(store, send_mix(), {"fast": [10, 20, 30, 40, 500], "failing": [7_000, 9_000]})
    rows = store.table(TableQuery(sort=sort, descending=descending))
    assert [row.name.rpartition(".")[2] for row in rows] == expected


def test_table_honours_sender_signal_and_receiver_filters(
    store: LatencyStore, receivers: None
) -> None:
    fill(store, send_mix(), {"fast": [10, 20, 30, 40, 500], "failing": [7_000, 9_000]})
    pasta = store.table(TableQuery(), EventFilter(sender="pasta"))
    assert [(row.name, row.histogram.count) for row in pasta] == [("tests.test_stats.fast", 1)]
    assert pasta[0].histogram.max_ns == 500
    till_only = store.table(TableQuery(), EventFilter(signal="till"))
    assert [row.name for row in till_only] == ["tests.test_stats.failing"]
    signals = store.table(TableQuery(group="signal"), EventFilter(receiver="failing"))
    assert [row.name for row in signals] == ["tests.test_stats.till"]


def test_table_hides_what_the_filter_hides(store: LatencyStore, receivers: None) -> None:
    events = send_mix()
    fill(store, events, {})
    fast_label, failing_label = "tests.test_stats.fast", "tests.test_stats.failing"
    for buffered in ((), events):  # from the statistics, and with errors only from the buffer
        extra: dict[str, Any] = {"errors_only": True} if buffered else {}

        def names(event_filter: EventFilter, group: str = "receiver") -> list[str]:
            rows = store.table(TableQuery(group=group), event_filter, buffered)  # noqa: B023
            return sorted(row.name for row in rows)

        everything = [] if buffered else [fast_label]
        assert names(EventFilter(hide_receivers=frozenset({failing_label}), **extra)) == (
            everything
        )
        assert names(EventFilter(hide_signals=frozenset({"tests.test_stats.till"}), **extra)) == (
            everything
        )
        assert names(
            EventFilter(hide_senders=frozenset({"tests.test_stats.Pizza"}), **extra), "sender"
        ) == ([] if buffered else ["tests.test_stats.Pasta"])
        assert names(EventFilter(hide_receivers=frozenset({fast_label}), **extra), "signal") == [
            "tests.test_stats.till"
        ]


def test_event_only_filters_are_answered_from_the_buffer(
    store: LatencyStore, receivers: None
) -> None:
    events = send_mix()
    fill(store, events, {})
    errors = store.table(TableQuery(), EventFilter(errors_only=True), events)
    assert [(row.name, row.histogram.count) for row in errors] == [("tests.test_stats.failing", 2)]
    assert store.table(TableQuery(), EventFilter(path="/orders/"), events) == []


def test_rolling_window_forgets_old_slices(store: LatencyStore, receivers: None) -> None:
    events = send_mix()
    fill(store, events, {})
    # Move every recorded slice back by more than the window.
    for series in [*store.calls.values(), *store.sends.values()]:
        series.slices = type(series.slices)(
            (slice_id - store.slices - 1, h) for slice_id, h in series.slices
        )
    assert store.table(TableQuery(window=True)) == []
    assert store.table(TableQuery(window=False))


def test_slow_rows_are_flagged(store: LatencyStore, receivers: None) -> None:
    fill(store, send_mix(), {"fast": [10, 20, 30, 40, 50], "failing": [7_000_000, 9_000_000]})
    rows = {row.name: row.slow for row in store.table(TableQuery(), slow_ns=5_000_000)}
    assert rows == {"tests.test_stats.fast": False, "tests.test_stats.failing": True}


def test_slowest_calls_are_kept_per_receiver(store: LatencyStore, receivers: None) -> None:
    store.slowest_kept = 2
    events = send_mix()
    fill(store, events, {"fast": [10, 900, 30, 800, 500]})
    slowest = store.slowest_calls("tests.test_stats.fast")
    assert [call.duration_ns for call in slowest] == [900, 800]
    assert slowest[0].event_id == events[1].uid


def test_a_receivers_slowest_calls_are_kept_once_for_all_its_senders(
    store: LatencyStore, receivers: None
) -> None:
    store.slowest_kept = 2
    events = send_mix()  # fast runs for Pizza four times, then for Pasta
    fill(store, events, {"fast": [10, 20, 30, 40, 900], "failing": [7_000, 9_000]})
    assert len(store.calls) == 3
    kept = {store.receiver_name(key)[0]: slowest.calls() for key, slowest in store.slowest.items()}
    assert {label: len(calls) for label, calls in kept.items()} == {
        "tests.test_stats.fast": 2,
        "tests.test_stats.failing": 2,
    }
    slowest = store.slowest_calls("tests.test_stats.fast")
    assert [(call.duration_ns, call.event_id) for call in slowest] == [
        (900, events[4].uid),
        (40, events[3].uid),
    ]
    merged = MergedStore([json.loads(json.dumps(store.snapshot("one")))])
    assert merged.slowest_calls("tests.test_stats.fast") == slowest


def test_a_snapshot_without_slowest_calls_still_merges(
    store: LatencyStore, receivers: None
) -> None:
    fill(store, send_mix(), {})
    snapshot = store.snapshot("older")
    del snapshot["slowest"]
    merged = MergedStore([snapshot])
    assert merged.slowest_calls("tests.test_stats.fast") == []
    assert merged.receiver_histogram("tests.test_stats.fast").count == 5


def test_table_query_parses_and_rejects() -> None:
    assert TableQuery.parse({}) == TableQuery()
    query = TableQuery.parse({"group": "sender", "sort": "name", "span": "all"})
    assert query == TableQuery(group="sender", sort="name", descending=False, window=False)
    assert TableQuery.parse(query.to_query()) == query
    with pytest.raises(ValueError, match="sort must be one of"):
        TableQuery.parse({"sort": "p42"})
    with pytest.raises(ValueError, match="group must be one of"):
        TableQuery.parse({"group": "pizza"})


# -- Storms -------------------------------------------------------------------------------------


@override_settings(SIGNAL_DASHBOARD={"ENABLED": True, "STORM_THRESHOLD": 3})
def test_a_receiver_running_more_than_the_threshold_in_one_request_is_a_storm(
    receivers: None,
) -> None:
    from signal_dashboard.record.recorder import recorder

    busy = Origin(kind="request", name="GET /busy/", request_id="busy")
    calm = Origin(kind="request", name="GET /calm/", request_id="calm")
    with capture():
        token = current_origin.set(busy)
        try:
            for _ in range(4):
                oven.send(sender=Pizza)
            till.send_robust(sender=Pizza)
        finally:
            current_origin.reset(token)
        token = current_origin.set(calm)
        try:
            for _ in range(3):
                oven.send(sender=Pizza)
        finally:
            current_origin.reset(token)
    recorder.record(busy)
    recorder.record(calm)
    recorder.drain()  # storms are noted off the request thread
    assert busy.storms == [("tests.test_stats.fast", 4)]
    assert calm.storms == []
    [row] = recorder.latency.table(TableQuery(), EventFilter(receiver="fast"))
    assert row.storms is not None
    assert (row.storms.requests, row.storms.max_calls) == (1, 4)


def test_series_beyond_the_key_limit_are_counted_as_overflow(receivers: None) -> None:
    store = LatencyStore(max_keys=3)
    fill(store, send_mix(), {})
    # oven/Pizza and its receiver, then oven/Pasta's send reach the limit. Not kept: that send's
    # receiver call, and both sends of till (a send not kept takes its calls with it).
    assert len(store.sends) + len(store.calls) == 3
    assert store.overflow == 1 + 2
    assert {row.name for row in store.table(TableQuery(group="signal"))} == {
        "tests.test_stats.oven"
    }


@override_settings(
    SIGNAL_DASHBOARD={"ENABLED": True, "STATS_WINDOW_SECONDS": 60, "STATS_MAX_KEYS": 7}
)
def test_settings_reach_the_store() -> None:
    from signal_dashboard.record.recorder import recorder

    assert recorder.latency.window_seconds == 60
    assert recorder.latency.max_keys == 7
    assert recorder.latency.slice_ns == 2_000_000_000


def test_slices_leaving_the_window_still_count_since_start() -> None:
    series = Series()
    for slice_id, value in [(1, 100), (1, 200), (2, 300), (3, 400), (4, 50_000)]:
        series.add(value, value == 300, wall_ns=slice_id * 10, slice_id=slice_id, max_slices=2)
    assert [slice_id for slice_id, _ in series.slices] == [3, 4]
    assert series.expired.count == 3
    total = series.total
    assert (total.count, total.errors, total.min_ns, total.max_ns) == (5, 1, 100, 50_000)
    assert series.window(since_slice=4).count == 1
    assert series.last_ns == 40


# -- Several processes ----------------------------------------------------------------------------


def test_snapshots_of_two_stores_merge_into_the_stats_of_all_calls(receivers: None) -> None:
    first, second, everything = LatencyStore(), LatencyStore(), LatencyStore()
    first.slowest_kept = second.slowest_kept = everything.slowest_kept = 3
    events = send_mix() + send_mix()
    for index, event in enumerate(events):
        (first if index % 2 else second).record(event)
        everything.record(event)
    snapshots = [
        json.loads(json.dumps(store.snapshot(name)))
        for name, store in (("a:1", first), ("b:2", second))
    ]
    merged = MergedStore(snapshots)
    assert merged.sources == ["a:1", "b:2"]
    for group in ("receiver", "signal", "sender"):
        for window in (True, False):
            query = TableQuery(group=group, window=window)
            expected = [(row.name, row.histogram) for row in everything.table(query)]
            assert [(row.name, row.histogram) for row in merged.table(query)] == expected
    label = "tests.test_stats.fast"
    assert merged.receiver_histogram(label) == everything.receiver_histogram(label)
    # Each store kept its three slowest: together they hold the three slowest of all.
    assert merged.slowest_calls(label)[:3] == everything.slowest_calls(label)
    [row] = merged.table(TableQuery(), EventFilter(receiver="failing"))
    assert (
        row.location == everything.table(TableQuery(), EventFilter(receiver="failing"))[0].location
    )
    with pytest.raises(TypeError):
        merged.record(events[0])


def test_a_merged_table_from_the_buffer_counts_the_storms_of_every_process(
    receivers: None,
) -> None:
    # Another process's statistics: failing ran four times in one command, a storm past three.
    elsewhere = LatencyStore(storm_threshold=3)
    with capture() as events:
        for _ in range(4):
            till.send_robust(sender=Pizza)
    command = Origin(kind="command", name="shell")
    for event in events:
        command.count_calls(event)
    elsewhere.record_many(events)
    assert elsewhere.record_origin(command) == [("tests.test_stats.failing", 4)]
    merged = MergedStore([json.loads(json.dumps(elsewhere.snapshot("elsewhere:1")))])
    assert list(merged.storms) == ["tests.test_stats.failing"]  # keyed by label
    buffer = send_mix()  # this process's recent events: failing ran twice
    for event_filter in (
        EventFilter(errors_only=True),
        EventFilter(min_duration_ms=0, receiver="failing"),
        EventFilter(process=str(os.getpid()), signal="till"),
    ):
        [row] = merged.table(TableQuery(), event_filter, buffer)
        assert (row.name, row.histogram.count) == ("tests.test_stats.failing", 2)
        assert row.storms == Storms(requests=1, max_calls=4)
        for group in ("signal", "sender"):
            [row] = merged.table(TableQuery(group=group), event_filter, buffer)
            assert row.storms is None
    assert merged.table(TableQuery(), EventFilter(path="/orders/"), buffer) == []


def test_a_snapshot_of_another_format_or_damaged_is_refused_whole(receivers: None) -> None:
    store = LatencyStore()
    fill(store, send_mix(), {})
    merged = MergedStore([])
    older = {**store.snapshot("old:1"), "format": 1}
    with pytest.raises(ValueError, match="'old:1' are in format 1; this version reads format 2"):
        merged.add(older)
    damaged = json.loads(json.dumps(store.snapshot("bad:2")))
    damaged["calls"][-1]["slices"][0][1][0] += 1  # its count no longer adds up
    with pytest.raises(ValueError, match="do not add up"):
        merged.add(damaged)
    incomplete = store.snapshot("bad:3")
    del incomplete["calls"][0]["expired"]
    with pytest.raises(ValueError, match="expired"):
        merged.add(incomplete)
    # The sends came before the damaged calls in each: none of them were added either.
    assert (merged.sources, merged.sends, merged.calls) == ([], {}, {})
    merged.add(store.snapshot("good:4"))
    assert merged.sources == ["good:4"]
    label = "tests.test_stats.fast"
    assert merged.receiver_histogram(label) == store.receiver_histogram(label)


def test_a_merge_changes_its_fingerprint_only_when_a_process_store_changed(
    receivers: None,
) -> None:
    first, second = LatencyStore(), LatencyStore()
    fill(first, send_mix(), {})

    def merge() -> MergedStore:
        return MergedStore(
            [json.loads(json.dumps(s.snapshot(n))) for n, s in (("a:1", first), ("b:2", second))]
        )

    assert merge().fingerprint() == merge().fingerprint()
    before = merge().fingerprint()
    fill(second, send_mix(), {})
    assert merge().fingerprint() != before
    # A snapshot that carries no version (an older release's) makes every merge a change.
    unversioned = {**first.snapshot("a:1"), "version": None}
    once = MergedStore([unversioned])
    assert once.fingerprint() == once.fingerprint()
    assert MergedStore([unversioned]).fingerprint() != once.fingerprint()


def test_a_series_queries_expire_with_its_slices_and_merge_across_processes() -> None:
    mine, theirs = Series(), Series()
    for slice_id, count in [(1, 3), (2, 1), (3, 4)]:
        mine.slice(slice_id, max_slices=2)
        mine.add_queries(slice_id, count, duration_ns=count * 1000)
    theirs.slice(3, max_slices=2)
    theirs.add_queries(3, 7, duration_ns=7000)
    assert mine.queries_since(None) == [8, 4, 8000]  # since start: queries, most in one, time
    assert mine.queries_since(3) == [4, 4, 4000]
    assert sorted(mine.queries) == [2, 3]  # slice 1 left the window: its queries expired
    mine.merge_parsed(Series.parse_dict(json.loads(json.dumps(theirs.as_dict()))), 2)
    assert mine.queries_since(None) == [15, 7, 15000]
    assert mine.queries_since(3) == [11, 7, 11000]
    damaged = {**theirs.as_dict(), "queries": [[3, 1, -1, 0]]}
    with pytest.raises(ValueError, match="queries"):
        Series.parse_dict(damaged)
