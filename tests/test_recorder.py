"""The in-process recorder: bounded, and subscribers that fail do not break sends."""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal

from signal_dashboard.recorder import Recorder, recorder


class Sender:
    pass


def test_ring_buffer_keeps_the_newest_events() -> None:
    ring = Recorder(size=3, request_size=2)
    for item in range(5):
        ring.record(item)  # type: ignore[arg-type]
    assert list(ring.events) == [2, 3, 4]


def test_resize_keeps_recent_events() -> None:
    ring = Recorder(size=5, request_size=2)
    for item in range(5):
        ring.record(item)  # type: ignore[arg-type]
    ring.resize(2, 2)
    assert list(ring.events) == [3, 4]


def test_subscribe_and_unsubscribe() -> None:
    ring = Recorder(size=3)
    seen: list[Any] = []
    unsubscribe = ring.subscribe(seen.append)
    ring.record(1)  # type: ignore[arg-type]
    unsubscribe()
    ring.record(2)  # type: ignore[arg-type]
    assert seen == [1]


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
