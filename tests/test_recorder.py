"""The in-process recorder: bounded, and subscribers that fail do not break sends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.dispatch import Signal

from signal_dashboard.capture.context import Origin
from signal_dashboard.capture.events import SignalEvent
from signal_dashboard.record.recorder import Recorder, recorder
from signal_dashboard.record.stats.table import TableQuery
from signal_dashboard.tracing import capture


class Sender:
    pass


def sent(count: int) -> list[SignalEvent]:
    """``count`` real events, one send each."""
    signal = Signal()
    signal.connect(lambda sender, **kwargs: None, weak=False)
    with capture() as events:
        for _ in range(count):
            signal.send(sender=Sender)
    return list(events)


def test_ring_buffer_keeps_the_newest_events() -> None:
    ring = Recorder(size=3, request_size=2)
    events = sent(5)
    for event in events:
        ring.record(event)
    assert list(ring.events) == events[2:]
    assert ring.latency.table(TableQuery(group="signal"))[0].histogram.count == 5


def test_resize_keeps_recent_events(settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {"BUFFER_SIZE": 5}
    ring = Recorder()
    events = sent(5)
    for event in events:
        ring.record(event)
    assert list(ring.events) == events
    settings.SIGNAL_DASHBOARD = {"BUFFER_SIZE": 2}
    assert list(ring.events) == events[3:]


def test_subscribe_and_unsubscribe() -> None:
    ring = Recorder(size=3)
    first, second = sent(2)
    seen: list[Any] = []
    unsubscribe = ring.subscribe(seen.append)
    ring.record(first)
    unsubscribe()
    ring.record(second)
    assert seen == [first]


def test_failing_subscriber_is_counted_and_the_send_still_returns() -> None:
    signal = Signal()
    signal.connect(lambda sender, **kwargs: "ok", weak=False)
    before = recorder.subscriber_failures

    def broken(event: Any) -> None:
        raise RuntimeError("subscriber bug")

    with recorder.subscribed(broken):
        assert [r[1] for r in signal.send(sender=Sender)] == ["ok"]
    assert recorder.subscriber_failures == before + 1
    assert recorder.events[-1].signal is signal


def test_a_recorded_event_is_accounted_at_the_next_drain() -> None:
    ring = Recorder(size=3)
    [event] = sent(1)
    ring.record(event)
    assert list(ring.pending) == [event]
    assert list(ring._events) == []
    assert list(ring.events) == [event]  # reading drains
    assert not ring.pending


def test_the_recorder_thread_drains_without_a_reader() -> None:
    ring = Recorder(size=3)
    ring.start()
    [event] = sent(1)
    ring.record(event)
    deadline = time.monotonic() + 10
    while ring.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    assert list(ring._events) == [event]


def test_events_beyond_the_pending_limit_are_counted_as_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("signal_dashboard.capture.outbox.PENDING_LIMIT", 2)
    ring = Recorder(size=5)
    events = sent(3)
    for event in events:
        ring.record(event)
    assert ring.lost == 1
    assert list(ring.events) == events[:2]


def test_a_finished_request_is_accounted_after_the_sends_it_made() -> None:
    ring = Recorder(size=5)
    origin = Origin(kind="request", name="GET /")
    [event] = sent(1)
    event.origin = origin
    ring.record(event)
    ring.record(origin)
    assert list(ring.requests) == [origin]
    assert origin.receiver_call_counts() == {event.calls[0][0]: 1}


@contextmanager
def drain_held_inside(ring: Recorder, event: SignalEvent) -> Iterator[threading.Event]:
    """A drain on another thread, stopped inside a subscriber with ``event`` taken from
    ``pending`` and not accounted yet, until the yielded event is set (or the block ends)."""
    inside, release = threading.Event(), threading.Event()

    def slow_subscriber(event: Any) -> None:
        inside.set()
        release.wait(10)

    ring.subscribe(slow_subscriber)
    ring.record(event)
    drainer = threading.Thread(target=ring.drain)
    drainer.start()
    try:
        assert inside.wait(10)
        yield release
        assert drainer.is_alive() or release.is_set()
    finally:
        release.set()
        drainer.join(10)


def test_a_drain_that_need_not_wait_leaves_the_events_to_the_drain_in_progress() -> None:
    ring = Recorder(size=3)
    first, second = sent(2)
    with drain_held_inside(ring, first):
        ring.record(second)
        ring.drain(wait=False)  # returns at once, with the other drain still inside
        assert list(ring.pending) == [second]
    ring.drain(wait=False)
    assert list(ring._events) == [first, second]


def test_a_reader_waits_for_a_drain_in_progress() -> None:
    ring = Recorder(size=3)
    [event] = sent(1)
    with drain_held_inside(ring, event) as release:
        threading.Timer(0.2, release.set).start()
        assert ring.latency.table(TableQuery(group="signal"))[0].histogram.count == 1
