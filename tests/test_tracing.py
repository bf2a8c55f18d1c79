"""The Signal patch: Django's dispatch semantics, with and without tracing, are the same."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from html import escape
from types import FrameType
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.dispatch import Signal, dispatcher

from signal_dashboard import conf, tracing
from signal_dashboard.capture import events as events_module
from signal_dashboard.capture import failures
from signal_dashboard.capture import send as send_path
from signal_dashboard.capture.context import PROCESS_ORIGIN, Origin, current_origin
from signal_dashboard.demo.pizzeria.models import Topping
from signal_dashboard.record.recorder import recorder
from signal_dashboard.record.stats.table import TableQuery
from signal_dashboard.web.consumers import DashboardConsumer
from signal_dashboard.web.registry import signal_registry


@pytest.fixture
def untraced() -> Iterator[None]:
    tracing.uninstall()
    try:
        yield
    finally:
        tracing.install()


def run_traced_and_untraced(scenario: Callable[[], Any]) -> tuple[Any, Any, list[Any]]:
    """Run the scenario without tracing, then with; return both results and the events."""
    tracing.uninstall()
    try:
        untraced_result = scenario()
    finally:
        tracing.install()
    with tracing.capture() as events:
        traced_result = scenario()
    return untraced_result, traced_result, events


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("returned", call())
    except Exception as exc:
        return ("raised", (type(exc), str(exc)))


class Receivers:
    """Receivers that remember what they were called with, for one scenario."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def returning(self, name: str, value: Any) -> Callable[..., Any]:
        def receiver(sender: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return value

        receiver.__qualname__ = f"receiver_{name}"
        return receiver

    def raising(self, name: str) -> Callable[..., Any]:
        def receiver(sender: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            raise ValueError(f"{name} failed")

        receiver.__qualname__ = f"receiver_{name}"
        return receiver

    def async_returning(self, name: str, value: Any) -> Callable[..., Any]:
        async def receiver(sender: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            await asyncio.sleep(0)
            return value

        receiver.__qualname__ = f"receiver_{name}"
        return receiver

    def async_raising(self, name: str) -> Callable[..., Any]:
        async def receiver(sender: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            await asyncio.sleep(0)
            raise KeyError(name)

        receiver.__qualname__ = f"receiver_{name}"
        return receiver


def normalise(responses: list[tuple[Any, Any]], receivers: dict[str, Callable[..., Any]]) -> list:
    """Map each returned receiver back to its name, checking it is the very object connected."""
    by_id = {id(r): name for name, r in receivers.items()}
    result = []
    for receiver, response in responses:
        assert id(receiver) in by_id, f"{receiver!r} is not a connected receiver"
        assert receivers[by_id[id(receiver)]] is receiver
        if isinstance(response, BaseException):
            response = ("error", type(response), str(response), response.__traceback__ is not None)
        result.append((by_id[id(receiver)], response))
    return result


SEND_METHODS = ["send", "send_robust"]
ASEND_METHODS = ["asend", "asend_robust"]


def scenario_for(
    method: str,
    build: Callable[[Signal, Receivers], dict[str, Callable[..., Any]]],
    make_signal: Callable[[], Signal] = Signal,
):
    """A scenario: a fresh signal, its receivers, one send with ``method``."""

    def scenario() -> tuple[Any, list[str]]:
        signal = make_signal()
        log = Receivers()
        receivers = build(signal, log)
        send = getattr(signal, method)
        if method.startswith("a"):
            result = outcome(lambda: async_to_sync(send)(sender=Sender, size="large"))
        else:
            result = outcome(lambda: send(sender=Sender, size="large"))
        if result[0] == "returned":
            result = ("returned", normalise(result[1], receivers))
        if not method.startswith("a"):
            return result, log.calls
        if result[0] == "raised":
            # asend() does not cancel the other receivers when one raises (Django 5.2 gathers
            # them all at once), so which of them had run by now is down to timing.
            return result, None
        return result, sorted(log.calls)

    return scenario


class Sender:
    pass


class OtherSender:
    pass


def sync_receivers(signal: Signal, log: Receivers) -> dict[str, Callable[..., Any]]:
    receivers = {
        "a": log.returning("a", 1),
        "b": log.returning("b", None),
        "c": log.returning("c", {"x": 1}),
    }
    for receiver in receivers.values():
        signal.connect(receiver, weak=False)
    return receivers


def mixed_receivers(signal: Signal, log: Receivers) -> dict[str, Callable[..., Any]]:
    receivers = {
        "sync": log.returning("sync", "s"),
        "async1": log.async_returning("async1", "a1"),
        "async2": log.async_returning("async2", "a2"),
        "sync2": log.returning("sync2", "s2"),
    }
    for receiver in receivers.values():
        signal.connect(receiver, weak=False)
    return receivers


def failing_receivers(signal: Signal, log: Receivers) -> dict[str, Callable[..., Any]]:
    receivers = {
        "first": log.returning("first", 1),
        "boom": log.raising("boom"),
        "after": log.returning("after", 3),
        "async_boom": log.async_raising("async_boom"),
        "async_ok": log.async_returning("async_ok", 4),
    }
    for receiver in receivers.values():
        signal.connect(receiver, weak=False)
    return receivers


def sender_filtered_receivers(signal: Signal, log: Receivers) -> dict[str, Callable[..., Any]]:
    receivers = {
        "mine": log.returning("mine", 1),
        "other": log.returning("other", 2),
        "any": log.returning("any", 3),
    }
    signal.connect(receivers["mine"], sender=Sender, weak=False)
    signal.connect(receivers["other"], sender=OtherSender, weak=False)
    signal.connect(receivers["any"], weak=False)
    return receivers


def dispatch_uid_receivers(signal: Signal, log: Receivers) -> dict[str, Callable[..., Any]]:
    receivers = {"first": log.returning("first", 1), "second": log.returning("second", 2)}
    signal.connect(receivers["first"], dispatch_uid="only-once", weak=False)
    signal.connect(receivers["second"], dispatch_uid="only-once", weak=False)
    return receivers


BUILDERS = {
    "sync": sync_receivers,
    "mixed": mixed_receivers,
    "failing": failing_receivers,
    "sender_filtered": sender_filtered_receivers,
    "dispatch_uid": dispatch_uid_receivers,
}


@pytest.mark.parametrize("method", SEND_METHODS + ASEND_METHODS)
@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_same_result_with_and_without_tracing(method: str, build: Callable[..., Any]) -> None:
    untraced_result, traced_result, events = run_traced_and_untraced(scenario_for(method, build))
    assert traced_result == untraced_result
    sends = [event for event in events if event.method == method]
    assert len(sends) == 1, "the traced run recorded its send"
    called = traced_result[1]
    if called is not None:
        assert len(sends[0].calls) == len(called)


def test_send_propagates_the_receivers_exception_object() -> None:
    signal = Signal()
    error = ValueError("exactly this one")

    def boom(sender: Any, **kwargs: Any) -> None:
        raise error

    signal.connect(boom, weak=False)
    with tracing.capture() as events, pytest.raises(ValueError, match="exactly") as raised:
        signal.send(sender=Sender)
    assert raised.value is error
    [event] = events
    [call] = event.receivers
    assert call.error is not None
    assert call.error.type == "builtins.ValueError"
    assert call.error.message == "exactly this one"
    assert "raise error" in call.error.traceback
    assert not event.ok


# --- The frames a receiver sees ------------------------------------------------------------

DJANGO_5 = dispatcher.__dict__.get("_run_parallel") is None


def callers(frame: FrameType | None) -> list[tuple[str, int, str]]:
    """(file, line, function) of ``frame`` and the frames that called it, up to frames_seen()."""
    found = []
    while frame is not None:
        found.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
        if frame.f_code is frames_seen.__code__:
            break
        frame = frame.f_back
    return found


def frames_seen(method: str, is_async: bool) -> tuple[list[tuple[str, int, str]], str]:
    """A receiver's callers in one send, and where its warning with stacklevel=3 pointed."""
    signal = Signal()
    seen: list[list[tuple[str, int, str]]] = []

    def sync_receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(callers(sys._getframe(1)))
        warnings.warn("from the receiver", UserWarning, stacklevel=3)

    async def async_receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(callers(sys._getframe(1)))
        warnings.warn("from the receiver", UserWarning, stacklevel=3)

    signal.connect(async_receiver if is_async else sync_receiver, weak=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if method.startswith("a"):
            async_to_sync(getattr(signal, method))(sender=Sender)
        else:
            getattr(signal, method)(sender=Sender)
    [warning] = caught
    [frames] = seen
    return frames, f"{warning.filename}:{warning.lineno}"


@pytest.mark.parametrize("ignored", [False, True], ids=["traced", "ignored_sender"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync_receiver", "async_receiver"])
@pytest.mark.parametrize("method", SEND_METHODS + ASEND_METHODS)
def test_a_receiver_sees_the_frames_it_sees_without_tracing(
    method: str, is_async: bool, ignored: bool, ignoring: Callable[..., None]
) -> None:
    if is_async and method == "asend" and DJANGO_5:
        pytest.skip("Django 5.2 runs asend()'s async receivers as tasks of their own")
    if is_async and method == "send" and DJANGO_5:
        pytest.skip("Django 5.2 runs send()'s async receivers as tasks of their own")
    if ignored:
        ignoring(senders=[IGNORED_SENDER])
    tracing.uninstall()
    try:
        untraced_frames, untraced_warning = frames_seen(method, is_async)
    finally:
        tracing.install()
    with tracing.capture() as events:
        traced_frames, traced_warning = frames_seen(method, is_async)
    assert len(events) == (0 if ignored else 1), "the send was traced unless ignored"
    # The frame that calls the receiver is ours instead of Django's; every frame above it is
    # the same, so a warning's stacklevel names the same line.
    assert len(traced_frames) == len(untraced_frames)
    assert traced_frames[1:] == untraced_frames[1:]
    assert traced_warning == untraced_warning


@pytest.mark.parametrize("ignored", [False, True], ids=["traced", "ignored_sender"])
@pytest.mark.parametrize("method", SEND_METHODS)
def test_a_receivers_warning_names_the_line_that_sent(
    method: str, ignored: bool, ignoring: Callable[..., None]
) -> None:
    if ignored:
        ignoring(senders=[IGNORED_SENDER])
    signal = Signal()

    def warns(sender: Any, **kwargs: Any) -> None:
        warnings.warn("look at the send", UserWarning, stacklevel=3)

    def send_here() -> int:
        getattr(signal, method)(sender=Sender)
        return sys._getframe().f_lineno - 1

    signal.connect(warns, weak=False)
    with tracing.capture() as events, pytest.warns(UserWarning, match="look at") as caught:
        line = send_here()
    assert len(events) == (0 if ignored else 1)
    [warning] = caught
    assert (warning.filename, warning.lineno) == (__file__, line)


@pytest.mark.parametrize("method", SEND_METHODS + ASEND_METHODS)
@pytest.mark.parametrize("is_async", [False, True], ids=["sync_receiver", "async_receiver"])
def test_a_receivers_traceback_starts_at_the_receiver(method: str, is_async: bool) -> None:
    signal = Signal()

    def fails(sender: Any, **kwargs: Any) -> None:
        raise ValueError("receiver failed")

    async def async_fails(sender: Any, **kwargs: Any) -> None:
        raise ValueError("receiver failed")

    signal.connect(async_fails if is_async else fails, weak=False)
    send = getattr(signal, method)
    with tracing.capture() as events, contextlib.suppress(ValueError):
        if method.startswith("a"):
            async_to_sync(send)(sender=Sender)
        else:
            send(sender=Sender)
    [event] = events
    [error] = event.errors
    frames = [line for line in error.traceback.splitlines() if line.startswith("  File ")]
    assert frames, error.traceback
    assert frames[0].endswith(f", in {'async_fails' if is_async else 'fails'}")
    assert send_path.__file__ not in error.traceback


@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
def test_send_robust_logs_like_django(traced: bool, caplog: pytest.LogCaptureFixture) -> None:
    if not traced:
        tracing.uninstall()
    try:
        signal = Signal()

        def fails(sender: Any, **kwargs: Any) -> None:
            raise RuntimeError("oven on fire")

        signal.connect(fails, weak=False)
        with caplog.at_level(logging.ERROR, logger="django.dispatch"):
            [(receiver, error)] = signal.send_robust(sender=Sender)
    finally:
        tracing.install()
    assert receiver is fails
    assert isinstance(error, RuntimeError)
    assert error.__traceback__ is not None
    [record] = caplog.records
    assert record.getMessage() == (
        "Error calling test_send_robust_logs_like_django.<locals>.fails in "
        "Signal.send_robust() (oven on fire)"
    )
    assert record.exc_info is not None
    assert record.exc_info[1] is error


def test_weak_receiver_collected_is_not_called_or_kept_alive() -> None:
    signal = Signal()
    calls = []

    def make_receiver() -> Callable[..., None]:
        def short_lived(sender: Any, **kwargs: Any) -> None:
            calls.append("called")

        return short_lived

    receiver = make_receiver()
    signal.connect(receiver)  # weak
    with tracing.capture() as events:
        signal.send(sender=Sender)
        assert calls == ["called"]
        del receiver
        gc.collect()
        assert signal.send(sender=Sender) == []
    assert calls == ["called"]
    assert not signal.has_listeners(Sender)
    assert len(events) == 1  # the event did not keep the receiver alive


def on_anything(sender: Any, **kwargs: Any) -> str:
    return "seen"


SHORT_LIVED = f"{__name__}.send_from_short_lived_objects.<locals>.ShortLived"


async def send_from_short_lived_objects(
    dashboard: WebsocketCommunicator,
) -> tuple[weakref.ref[Any], weakref.ref[Any]]:
    """Send with a class and a signal made here; return weak references to both once a
    dashboard showed the sends and the registry and statistics were read."""

    class ShortLived:
        pass

    signal = Signal()
    signal.connect(on_anything, weak=False)
    signal.send(sender=ShortLived, size="large")
    signal.send_robust(sender=ShortLived)
    await signal.asend(sender=ShortLived)
    html = ""
    while html.count(f'data-sender="{escape(SHORT_LIVED)}"') < 3:
        html += await dashboard.receive_from(timeout=3)
    assert any(info.signal is signal for info in signal_registry())
    groups = recorder.latency.table(TableQuery(group="sender"))
    assert [row.name for row in groups].count(SHORT_LIVED) == 1
    return weakref.ref(ShortLived), weakref.ref(signal)


@pytest.mark.django_db
def test_senders_and_signals_stay_collectable_with_a_dashboard_open() -> None:
    async def scenario() -> tuple[weakref.ref[Any], weakref.ref[Any]]:
        dashboard = WebsocketCommunicator(DashboardConsumer.as_asgi(), "/ws/signals/")
        dashboard.scope["user"] = User(username="chef", is_staff=True, is_active=True)
        connected, _ = await dashboard.connect()
        assert connected
        try:
            return await send_from_short_lived_objects(dashboard)
        finally:
            await dashboard.disconnect()

    sender_ref, signal_ref = async_to_sync(scenario)()
    gc.collect()
    assert sender_ref() is None
    assert signal_ref() is None
    # What the dashboard shows of them outlives them.
    sends = [event for event in recorder.events if event.sender_label == SHORT_LIVED]
    assert [event.method for event in sends] == ["send", "send_robust", "asend"]
    assert all(event.sender is None and event.signal is None for event in sends)
    assert all(event.signal_label.startswith("Signal@0x") for event in sends)
    groups = recorder.latency.table(TableQuery(group="sender"))
    assert [row.histogram.count for row in groups if row.name == SHORT_LIVED] == [3]


def test_bound_method_receiver_is_returned_as_django_returns_it() -> None:
    signal = Signal()

    class Kitchen:
        def on_order(self, sender: Any, **kwargs: Any) -> str:
            return "cooking"

    kitchen = Kitchen()
    signal.connect(kitchen.on_order)
    with tracing.capture() as events:
        [(receiver, response)] = signal.send(sender=Sender)
    assert receiver == kitchen.on_order
    assert receiver.__self__ is kitchen
    assert response == "cooking"
    [call] = events[0].receivers
    assert call.label.endswith("Kitchen.on_order")
    del kitchen, receiver
    gc.collect()
    assert not signal.has_listeners(Sender)


def test_caching_signal_keeps_its_cache_semantics() -> None:
    def scenario() -> tuple[Any, ...]:
        signal = Signal(use_caching=True)

        def receiver(sender: Any, **kwargs: Any) -> str:
            return "ok"

        signal.connect(receiver, sender=Sender, weak=False)
        first = signal.send(sender=Sender)
        empty = signal.send(sender=OtherSender)
        cached = signal.sender_receivers_cache.get(OtherSender)
        return (
            [r[1] for r in first],
            empty,
            cached is dispatcher.NO_RECEIVERS,
            signal.has_listeners(Sender),
            signal.has_listeners(OtherSender),
        )

    untraced_result, traced_result, events = run_traced_and_untraced(scenario)
    assert traced_result == untraced_result == (["ok"], [], True, True, False)
    assert [event.sender for event in events] == [Sender]


def test_install_and_uninstall_are_idempotent_and_restore_django() -> None:
    names = ("send", "send_robust", "asend", "asend_robust")
    tracing.install()
    tracing.install()
    assert tracing.is_installed()
    patched = {name: dispatcher.Signal.__dict__[name] for name in names}
    assert all(m.__code__.co_filename == send_path.__file__ for m in patched.values())
    tracing.uninstall()
    tracing.uninstall()
    try:
        assert not tracing.is_installed()
        for name in names:
            method = dispatcher.Signal.__dict__[name]
            assert method.__code__.co_filename == dispatcher.__file__, name
            assert not hasattr(method, "__wrapped__"), name
    finally:
        tracing.install()
    assert {name: dispatcher.Signal.__dict__[name] for name in names} != patched  # fresh patch
    # has_listeners is never touched.
    assert dispatcher.Signal.has_listeners.__code__.co_filename == dispatcher.__file__


def test_signal_created_before_and_after_install_are_traced(untraced: None) -> None:
    before = Signal()
    before.connect(lambda sender, **kwargs: None, weak=False)
    tracing.install()
    after = Signal()
    after.connect(lambda sender, **kwargs: None, weak=False)
    with tracing.capture() as events:
        before.send(sender=Sender)
        after.send(sender=Sender)
    assert [event.signal for event in events] == [before, after]


def test_nested_sends_record_parent_and_depth() -> None:
    outer, inner = Signal(), Signal()

    def outer_receiver(sender: Any, **kwargs: Any) -> None:
        inner.send(sender=OtherSender)

    inner.connect(lambda sender, **kwargs: None, weak=False)
    outer.connect(outer_receiver, weak=False)
    with tracing.capture() as events:
        outer.send(sender=Sender)
    inner_event, outer_event = events  # the inner send finishes first
    assert inner_event.parent is outer_event
    assert (outer_event.depth, inner_event.depth) == (0, 1)
    assert outer_event.duration_ns >= inner_event.duration_ns


def test_nested_sends_under_asend_keep_their_parent() -> None:
    outer, inner = Signal(), Signal()

    async def outer_receiver(sender: Any, **kwargs: Any) -> None:
        await inner.asend(sender=OtherSender)

    def sync_outer_receiver(sender: Any, **kwargs: Any) -> None:
        inner.send(sender=OtherSender)

    inner.connect(lambda sender, **kwargs: None, weak=False)
    outer.connect(outer_receiver, weak=False)
    outer.connect(sync_outer_receiver, weak=False)
    with tracing.capture() as events:
        async_to_sync(outer.asend)(sender=Sender)
    [outer_event] = [e for e in events if e.signal is outer]
    children = [e for e in events if e.signal is inner]
    assert len(children) == 2
    assert all(child.parent is outer_event and child.depth == 1 for child in children)


def test_a_send_nested_in_threads_names_its_closest_parent() -> None:
    # outer.send -> receiver -> async_to_sync -> middle.asend -> sync receiver, which runs
    # back on outer's thread -> inner.send: inner's parent is middle, not outer.
    outer, middle, inner = Signal(), Signal(), Signal()

    async def run_middle() -> None:
        await middle.asend(sender=Sender)

    outer.connect(lambda sender, **kwargs: async_to_sync(run_middle)(), weak=False)
    middle.connect(lambda sender, **kwargs: inner.send(sender=OtherSender), weak=False)
    inner.connect(lambda sender, **kwargs: None, weak=False)
    with tracing.capture() as events:
        outer.send(sender=Sender)
        inner.send(sender=Sender)  # the thread's nesting was undone
    [middle_event] = events.filter(signal=middle)
    first_inner, second_inner = events.filter(signal=inner)
    assert first_inner.parent is middle_event
    assert second_inner.parent is None


def test_sends_in_two_threads_nest_independently() -> None:
    outer, inner = Signal(), Signal()
    inside = threading.Barrier(2)

    def outer_receiver(sender: Any, **kwargs: Any) -> None:
        inside.wait(timeout=5)  # both outer sends are running at once
        inner.send(sender=sender)
        inside.wait(timeout=5)

    outer.connect(outer_receiver, weak=False)
    inner.connect(lambda sender, **kwargs: None, weak=False)
    with tracing.capture() as events:
        other = threading.Thread(target=outer.send, kwargs={"sender": OtherSender})
        other.start()
        outer.send(sender=Sender)
        other.join()
    for sender in (Sender, OtherSender):
        [outer_event] = events.filter(signal=outer, sender=sender)
        [inner_event] = events.filter(signal=inner, sender=sender)
        assert inner_event.parent is outer_event


def test_async_receivers_timed_under_send_and_asend() -> None:
    signal = Signal()

    async def slow(sender: Any, **kwargs: Any) -> str:
        await asyncio.sleep(0.01)
        return "done"

    signal.connect(slow, weak=False)
    with tracing.capture() as events:
        assert signal.send(sender=Sender) == [(slow, "done")]
        assert async_to_sync(signal.asend)(sender=Sender) == [(slow, "done")]
    assert [event.method for event in events] == ["send", "asend"]
    for event in events:
        [call] = event.receivers
        assert call.is_async
        assert call.duration_ns >= 10_000_000
        assert call.result == "done"


def test_sends_without_receivers_are_not_recorded_by_default(settings: Any) -> None:
    signal = Signal()
    with tracing.capture() as events:
        signal.send(sender=Sender)
    assert events == []
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "RECORD_EMPTY_SENDS": True}
    with tracing.capture() as events:
        signal.send(sender=Sender, size="small")
    [event] = events
    assert event.calls == []
    assert event.payload == {"size": "small"}


def test_an_empty_send_inside_a_receiver_names_its_parent(settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "RECORD_EMPTY_SENDS": True}
    outer, empty = Signal(), Signal()
    outer.connect(lambda sender, **kwargs: empty.send(sender=OtherSender), weak=False)
    with tracing.capture() as events:
        outer.send(sender=Sender)
    [empty_event] = events.filter(signal=empty)
    [outer_event] = events.filter(signal=outer)
    assert empty_event.parent is outer_event


def test_an_asend_run_by_a_receiver_on_its_own_thread_names_its_parent() -> None:
    outer, inner = Signal(), Signal()

    async def inner_receiver(sender: Any, **kwargs: Any) -> None:
        return None

    outer.connect(lambda sender, **kwargs: asyncio.run(inner.asend(sender=OtherSender)), weak=False)
    inner.connect(inner_receiver, weak=False)
    with tracing.capture() as events:
        outer.send(sender=Sender)
    [inner_event] = events.filter(signal=inner)
    [outer_event] = events.filter(signal=outer)
    assert inner_event.parent is outer_event


def test_tracing_failure_never_reaches_the_app(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("summary failed")

    monkeypatch.setattr(events_module, "summarize_kwargs", broken)
    monkeypatch.setattr(failures.Failures, "count", 0)
    signal = Signal()
    signal.connect(lambda sender, **kwargs: "still works", weak=False)
    toppings = ["ham"]  # not a plain value, so it is summarized at send time
    with caplog.at_level(logging.ERROR, logger="signal_dashboard"):
        assert [r[1] for r in signal.send(sender=Sender, toppings=toppings)] == ["still works"]
        assert [r[1] for r in signal.send_robust(sender=Sender, toppings=toppings)] == [
            "still works"
        ]
        assert [r[1] for r in async_to_sync(signal.asend)(sender=Sender, toppings=toppings)] == [
            "still works"
        ]
    assert failures.Failures.count == 3
    assert len([r for r in caplog.records if r.name == "signal_dashboard"]) == 1


def test_signals_sent_by_subscribers_are_not_traced() -> None:
    signal = Signal()
    signal.connect(lambda sender, **kwargs: None, weak=False)
    seen = []

    def noisy_subscriber(event: Any) -> None:
        seen.append(event)
        signal.send(sender=OtherSender)  # would loop forever if traced

    with recorder.subscribed(noisy_subscriber):
        signal.send(sender=Sender)
    assert [event.sender for event in seen] == [Sender]


def test_events_name_their_origin_outside_requests() -> None:
    signal = Signal()
    signal.connect(lambda sender, **kwargs: None, weak=False)
    with tracing.capture() as events:
        signal.send(sender=Sender)
    [event] = events
    assert event.origin is current_origin.get()
    assert event.origin.kind == "process"
    data = event.as_dict()
    assert data["origin"]["kind"] == "process"
    assert isinstance(data["pid"], int)
    assert data["host"]


def test_event_as_dict_labels() -> None:
    signal = Signal()

    def on_pizza(sender: Any, **kwargs: Any) -> int:
        return 42

    signal.connect(on_pizza, weak=False)
    with tracing.capture() as events:
        signal.send(sender=Sender, toppings=["ham"], size="large")
    data = events[0].as_dict()
    assert data["sender"] == "tests.test_tracing.Sender"
    assert data["signal"].startswith("Signal@")  # a local signal has no dotted path
    assert data["payload"] == {"toppings": ["ham"], "size": "large"}
    [receiver] = data["receivers"]
    assert receiver["receiver"] == "tests.test_tracing.test_event_as_dict_labels.<locals>.on_pizza"
    assert receiver["location"].endswith(f"test_tracing.py:{on_pizza.__code__.co_firstlineno}")
    assert receiver["result"] == 42
    assert receiver["error"] is None
    assert data["ok"] is True


# --- The detail limit: folded sends, exact statistics ----------------------------------------


@pytest.fixture
def detail_limit(settings: Any) -> int:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "DETAIL_LIMIT": 3, "SLOW_MS": 50}
    recorder.clear()
    return 3


@contextlib.contextmanager
def in_request() -> Iterator[Origin]:
    origin = Origin(kind="request", name="GET /fold/", method="GET", path="/fold/")
    token = current_origin.set(origin)
    try:
        yield origin
    finally:
        current_origin.reset(token)


def calls_counted(store: Any, receiver: Callable[..., Any]) -> int:
    label = f"{receiver.__module__}.{receiver.__qualname__}"
    return store.receiver_histogram(label).count


def test_sends_past_the_detail_limit_are_folded_and_counted_exactly(detail_limit: int) -> None:
    signal = Signal()
    signal.connect(on_anything, weak=False)
    with tracing.capture(limit_detail=True) as events, in_request() as origin:
        responses = [signal.send(sender=Sender, n=n) for n in range(10_000)]
    # Receivers still run and answer as Django's do.
    assert responses == [[(on_anything, "seen")]] * 10_000
    assert [event.payload["n"] for event in events] == [0, 1, 2]
    assert origin.signal_count == 10_000
    [fold] = [fold for fold in recorder.folds if fold.origin is origin]
    assert fold.folded == 10_000 - detail_limit
    record = fold.as_dict()
    [receiver] = record["receivers"]
    assert receiver["receiver"] == f"{__name__}.on_anything"
    assert receiver["count"] == 10_000 - detail_limit
    assert 0 < receiver["max_ns"] <= receiver["total_ns"]
    assert (record["type"], record["count"]) == ("fold", 10_000 - detail_limit)
    assert record["sender"] == f"{__name__}.Sender"
    assert calls_counted(recorder.latency, on_anything) == 10_000
    sends = recorder.latency.table(TableQuery(group="sender"))
    assert [row.histogram.count for row in sends if row.name == f"{__name__}.Sender"] == [10_000]


def test_a_first_fold_is_counted_by_the_next_reader(detail_limit: int) -> None:
    signal = Signal()
    signal.connect(on_anything, weak=False)
    with tracing.capture(limit_detail=True), in_request():
        for _ in range(detail_limit + 1):
            signal.send(sender=Sender)
        # Read at once: the tally's first fold is pending, and its counts are read with it.
        assert calls_counted(recorder.latency, on_anything) == detail_limit + 1


def test_capture_records_every_send_in_full_unless_asked(detail_limit: int) -> None:
    signal = Signal()
    signal.connect(on_anything, weak=False)
    with tracing.capture() as events, in_request():
        for _ in range(10):
            signal.send(sender=Sender)
    assert len(events) == 10
    assert recorder.folds == []


def test_outliers_of_a_folded_pair_are_kept_in_full(detail_limit: int) -> None:
    signal = Signal()

    def sometimes_fails(sender: Any, n: int, **kwargs: Any) -> None:
        if n == 5:
            raise ValueError("fifth")
        if n == 7:
            time.sleep(0.06)  # past SLOW_MS

    signal.connect(sometimes_fails, weak=False)
    with tracing.capture(limit_detail=True) as events, in_request() as origin:
        for n in range(10):
            signal.send_robust(sender=Sender, n=n)
    assert [event.payload["n"] for event in events] == [0, 1, 2, 5, 7]
    failed, slow = events[3], events[4]
    assert (failed.ok, failed.errors[0].message) == (False, "fifth")
    assert failed.payload_after_send
    assert slow.ok
    assert slow.receivers[0].duration_ns >= 50_000_000
    assert slow.payload_after_send
    assert not events[0].payload_after_send
    assert failed.as_dict()["payload_after_send"] is True
    [fold] = [fold for fold in recorder.folds if fold.origin is origin]
    assert fold.folded == 10 - detail_limit - 2
    assert calls_counted(recorder.latency, sometimes_fails) == 10


def test_nested_sends_of_folded_receivers_count_toward_their_own_pair(detail_limit: int) -> None:
    outer, inner = Signal(), Signal()

    def relay(sender: Any, **kwargs: Any) -> None:
        inner.send(sender=OtherSender)

    outer.connect(relay, weak=False)
    inner.connect(on_anything, weak=False)
    with tracing.capture(limit_detail=True) as events, in_request() as origin:
        for _ in range(5):
            outer.send(sender=Sender)
    assert len(events.filter(signal=outer)) == len(events.filter(signal=inner)) == detail_limit
    assert origin.signal_count == 10
    assert all(event.depth == 1 for event in events.filter(signal=inner))
    counts = {
        receiver["receiver"]: receiver["count"]
        for fold in recorder.folds
        if fold.origin is origin
        for receiver in fold.receiver_summaries()
    }
    assert counts == {f"{__name__}.on_anything": 2, f"{relay.__module__}.{relay.__qualname__}": 2}
    # The sends made by a folded send's receivers name its fold as their parent.
    nested = [
        fold for fold in recorder.folds if fold.origin is origin and fold.signal_key() is inner
    ]
    assert [fold.depth for fold in nested] == [1]
    assert calls_counted(recorder.latency, on_anything) == 5


def test_outside_requests_the_detail_limit_is_per_second(detail_limit: int) -> None:
    signal = Signal()
    signal.connect(on_anything, weak=False)
    with tracing.capture(limit_detail=True) as events:
        for _ in range(5):
            signal.send(sender=Sender)
        for tally in send_path._process_tallies.tallies.values():  # a second later
            tally.until_ns = 0
        send_path._process_tallies.since -= 1_000_000_000
        for _ in range(5):
            signal.send(sender=Sender)
    assert len(events) == 2 * detail_limit
    folds = [fold for fold in recorder.folds if fold.origin is PROCESS_ORIGIN]
    assert sum(fold.folded for fold in folds) == 4


def test_folded_sends_keep_no_sender_alive(detail_limit: int) -> None:
    def send_many() -> tuple[weakref.ref[Any], weakref.ref[Any]]:
        class Folded:
            pass

        signal = Signal()
        signal.connect(on_anything, weak=False)
        instance = Folded()
        with tracing.capture(limit_detail=True), in_request():
            for _ in range(10):
                signal.send(sender=instance)  # not folded: an instance is only counted
            for _ in range(10):
                signal.send(sender=Folded)
        return weakref.ref(Folded), weakref.ref(instance)

    folded, instance = send_many()
    gc.collect()
    assert instance() is None
    assert folded() is None
    assert recorder.folds[-1].folded == 7
    assert recorder.folds[-1].as_dict()["sender"].endswith("<locals>.Folded")


# --- IGNORE_SIGNALS and IGNORE_SENDERS: sends that are never traced ---------------------------

ignored_signal = Signal()
IGNORED_SIGNAL_PATH = f"{__name__}.ignored_signal"
IGNORED_SENDER = f"{__name__}.Sender"


def new_ignored_signal() -> Signal:
    """A fresh signal at IGNORED_SIGNAL_PATH, where the settings, read again, find it."""
    global ignored_signal
    ignored_signal = Signal()
    conf.reset()
    return ignored_signal


@pytest.fixture
def ignoring(settings: Any) -> Callable[..., None]:
    """Set IGNORE_SIGNALS and IGNORE_SENDERS (for this test)."""

    def ignore(signals: Sequence[str] = (), senders: Sequence[str] = ()) -> None:
        settings.SIGNAL_DASHBOARD = {
            **settings.SIGNAL_DASHBOARD,
            "IGNORE_SIGNALS": signals,
            "IGNORE_SENDERS": senders,
        }

    return ignore


@pytest.mark.parametrize("method", SEND_METHODS + ASEND_METHODS)
@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_an_ignored_signal_is_sent_as_django_sends_it_and_not_traced(
    ignoring: Callable[..., None], method: str, build: Callable[..., Any]
) -> None:
    ignoring(signals=[IGNORED_SIGNAL_PATH])
    scenario = scenario_for(method, build, make_signal=new_ignored_signal)
    untraced_result, traced_result, events = run_traced_and_untraced(scenario)
    assert traced_result == untraced_result
    assert events == []


@pytest.mark.parametrize("method", SEND_METHODS + ASEND_METHODS)
@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_a_send_from_an_ignored_sender_is_sent_as_django_sends_it_and_not_traced(
    ignoring: Callable[..., None], method: str, build: Callable[..., Any]
) -> None:
    ignoring(senders=[IGNORED_SENDER])
    untraced_result, traced_result, events = run_traced_and_untraced(scenario_for(method, build))
    assert traced_result == untraced_result
    assert events == []


def test_only_what_is_ignored_is_left_out(ignoring: Callable[..., None], settings: Any) -> None:
    ignoring(
        signals=[IGNORED_SIGNAL_PATH],
        senders=["pizzeria.Topping", "order_pizza", f"<{__name__}.OtherSender instance>"],
    )
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "RECORD_EMPTY_SENDS": True}
    ignored, traced, empty = new_ignored_signal(), Signal(), Signal()
    for signal in (ignored, traced):
        signal.connect(on_anything, weak=False)
    with tracing.capture() as events:
        assert ignored.send(sender=Sender) == [(on_anything, "seen")]
        assert ignored.send(sender=None) == [(on_anything, "seen")]
        for sender in (Topping, "order_pizza", OtherSender()):
            assert traced.send(sender=sender) == [(on_anything, "seen")]
        assert empty.send(sender=Topping) == []
        traced.send(sender=Sender)
        traced.send(sender="order_pizza_2")
        traced.send(sender=OtherSender)
        empty.send(sender=Sender)
    assert [(event.signal, event.sender_label) for event in events] == [
        (traced, f"{__name__}.Sender"),
        (traced, "order_pizza_2"),
        (traced, f"{__name__}.OtherSender"),
        (empty, f"{__name__}.Sender"),
    ]


def test_ignore_settings_take_effect_when_they_change(
    ignoring: Callable[..., None], settings: Any
) -> None:
    signal = new_ignored_signal()
    signal.connect(on_anything, weak=False)
    with tracing.capture() as events:
        signal.send(sender=Sender)
        ignoring(signals=IGNORED_SIGNAL_PATH)  # one path, not a list of one-letter ones
        signal.send(sender=Sender)
        ignoring(senders=[IGNORED_SENDER])
        signal.send(sender=Sender)
        signal.send(sender=OtherSender)
        ignoring()
        signal.send(sender=Sender)
    assert [event.sender for event in events.filter(signal=signal)] == [Sender, OtherSender, Sender]


def test_sends_made_by_an_ignored_signals_receivers_keep_their_parent(
    ignoring: Callable[..., None],
) -> None:
    ignoring(signals=[IGNORED_SIGNAL_PATH])
    outer, ignored, inner = Signal(), new_ignored_signal(), Signal()

    async def async_relay(sender: Any, **kwargs: Any) -> None:
        await inner.asend(sender=OtherSender)

    outer.connect(lambda sender, **kwargs: ignored.send(sender=sender), weak=False)
    ignored.connect(lambda sender, **kwargs: inner.send(sender=sender), weak=False)
    ignored.connect(async_relay, weak=False)
    inner.connect(on_anything, weak=False)
    with tracing.capture() as events:
        outer.send(sender=Sender)
        ignored.send(sender=OtherSender)
    [outer_event] = events.filter(signal=outer)
    assert [(event.sender, event.parent) for event in events.filter(signal=inner)] == [
        (Sender, outer_event),
        (OtherSender, outer_event),
        (OtherSender, None),
        (OtherSender, None),
    ]
    assert events.filter(signal=ignored) == []


def test_an_ignored_sender_is_not_kept_alive(ignoring: Callable[..., None]) -> None:
    def send_once() -> weakref.ref[Any]:
        class ShortLived:
            pass

        ignoring(senders=[f"{ShortLived.__module__}.{ShortLived.__qualname__}"])
        signal = Signal()
        signal.connect(on_anything, weak=False)
        with tracing.capture() as events:
            signal.send(sender=ShortLived)
        assert events == []
        return weakref.ref(ShortLived)

    sender = send_once()
    gc.collect()
    assert sender() is None


def test_trace_only_signals_leaves_every_other_signal_untraced(settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {
        **settings.SIGNAL_DASHBOARD,
        "TRACE_ONLY_SIGNALS": [IGNORED_SIGNAL_PATH],
    }
    allowed, other = new_ignored_signal(), Signal()
    for signal in (allowed, other):
        signal.connect(on_anything, weak=False)
    with tracing.capture() as events:
        assert other.send(sender=Sender) == [(on_anything, "seen")]
        assert allowed.send(sender=Sender) == [(on_anything, "seen")]
    assert [event.signal for event in events] == [allowed]
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "TRACE_ONLY_SIGNALS": []}
    with tracing.capture() as events:
        other.send(sender=Sender)
    assert [event.signal for event in events] == [other]
