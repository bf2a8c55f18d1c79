"""The broadcaster: batches from the recorder handed to this process's dashboards."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.dispatch import Signal

from signal_dashboard.capture import send
from signal_dashboard.record import broadcast
from signal_dashboard.record.broadcast import broadcaster
from signal_dashboard.record.recorder import Recorder, recorder

soup_signal = Signal()


def on_soup(sender: Any, **kwargs: Any) -> None:
    pass


soup_signal.connect(on_soup)


class Soup:
    pass


@pytest.fixture(autouse=True)
def no_timed_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the tests flush, so each knows what a batch holds."""
    monkeypatch.setattr(broadcast, "FLUSH_INTERVAL", 3600.0)


def send_soups(count: int) -> None:
    for _ in range(count):
        soup_signal.send(sender=Soup)
    recorder.drain()  # hands them to the broadcaster now rather than within DRAIN_INTERVAL


class Dashboard:
    """A receiver that keeps what it is handed."""

    def __init__(self) -> None:
        self.batches: list[Mapping[str, Any]] = []

    async def __call__(self, batch: Mapping[str, Any]) -> None:
        self.batches.append(batch)


def test_every_dashboard_gets_the_same_batch_without_a_copy() -> None:
    first, second = Dashboard(), Dashboard()

    async def test() -> None:
        broadcaster.attach(first)
        broadcaster.attach(second)
        try:
            send_soups(3)
            await broadcaster.flush()
        finally:
            broadcaster.detach(first)
            broadcaster.detach(second)

    async_to_sync(test)()
    assert len(first.batches) == len(second.batches) == 1
    batch = first.batches[0]
    assert second.batches[0] is batch
    assert [row["sender"] for row in batch["rows"]] == ["tests.test_broadcast.Soup"] * 3
    assert batch["type"] == "signal.batch"
    assert broadcaster.listeners == 0
    assert broadcaster not in recorder.subscribers


def test_a_flush_takes_what_the_recorder_has_not_drained_yet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A recorder whose thread never runs: only the flush can drain it.
    idle = Recorder()
    monkeypatch.setattr(send, "outbox", idle.outbox)
    monkeypatch.setattr(broadcast, "recorder", idle)
    dashboard = Dashboard()

    async def test() -> None:
        broadcaster.attach(dashboard)
        try:
            soup_signal.send(sender=Soup)
            soup_signal.send(sender=Soup)
            assert len(idle.pending) == 2
            await broadcaster.flush()
        finally:
            broadcaster.detach(dashboard)

    async_to_sync(test)()
    [batch] = dashboard.batches
    assert [row["sender"] for row in batch["rows"]] == ["tests.test_broadcast.Soup"] * 2
    assert not idle.pending


def test_a_failing_dashboard_does_not_keep_the_batch_from_the_others() -> None:
    async def broken(batch: Mapping[str, Any]) -> None:
        raise RuntimeError("socket gone")

    healthy = Dashboard()

    async def test() -> None:
        broadcaster.attach(broken)
        broadcaster.attach(healthy)
        try:
            send_soups(1)
            before = broadcaster.receiver_failures
            await broadcaster.flush()  # must not raise
            assert broadcaster.receiver_failures == before + 1
        finally:
            broadcaster.detach(broken)
            broadcaster.detach(healthy)

    async_to_sync(test)()
    assert [len(batch["rows"]) for batch in healthy.batches] == [1]


def test_rows_carry_running_numbers_and_overflow_is_counted(settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "STREAM_BUFFER_SIZE": 5}
    dashboard = Dashboard()

    async def test() -> None:
        broadcaster.attach(dashboard)
        try:
            dropped = broadcaster.dropped
            send_soups(2)
            await broadcaster.flush()
            send_soups(8)
            await broadcaster.flush()
            assert broadcaster.dropped == dropped + 3
        finally:
            broadcaster.detach(dashboard)

    async_to_sync(test)()
    first, second = dashboard.batches
    assert second["first"] == first["first"] + 2
    assert len(second["rows"]) == 5
    assert second["dropped"] - first["dropped"] == 3


def test_events_the_recorder_could_not_take_count_as_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dashboard = Dashboard()

    async def test() -> None:
        broadcaster.attach(dashboard)
        try:
            send_soups(1)
            await broadcaster.flush()
            monkeypatch.setattr(recorder.outbox, "lost", recorder.lost + 4)
            send_soups(1)
            await broadcaster.flush()
        finally:
            broadcaster.detach(dashboard)

    async_to_sync(test)()
    first, second = dashboard.batches
    assert second["dropped"] - first["dropped"] == 4
