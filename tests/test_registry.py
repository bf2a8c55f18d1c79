"""The signal registry: which signals are listed, receivers' fields, usage, dead receivers."""

from __future__ import annotations

import gc
import inspect
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import django
import pytest
from django.db.models.signals import post_save
from django.dispatch import Signal
from django.test import override_settings

from signal_dashboard.demo.pizzeria.models import Topping
from signal_dashboard.demo.pizzeria.signals import pizza_done
from signal_dashboard.record.recorder import recorder
from signal_dashboard.record.stats.store import LatencyStore
from signal_dashboard.tracing import capture
from signal_dashboard.web.registry import (
    DEAD_RECEIVER,
    ReceiverInfo,
    SignalInfo,
    known_signals,
    signal_registry,
)

bell = Signal()
gong = Signal()
silent = Signal()


class Kitchen:
    """A plain-class sender."""


def plain(sender: Any, **kwargs: Any) -> None:
    pass


def strong(sender: Any, **kwargs: Any) -> None:
    pass


def with_uid(sender: Any, **kwargs: Any) -> None:
    pass


def for_topping(sender: Any, **kwargs: Any) -> None:
    pass


def for_kitchen(sender: Any, **kwargs: Any) -> None:
    pass


async def asynchronous(sender: Any, **kwargs: Any) -> None:
    pass


class Listener:
    def on_bell(self, sender: Any, **kwargs: Any) -> None:
        pass


class CallableReceiver:
    def __call__(self, sender: Any, **kwargs: Any) -> None:
        pass


class Stranger:
    """A sender no send, model registry or store knows."""


class Unnameable:
    """A callable whose attributes cannot be read once broken, like a proxy whose target failed."""

    broken = False

    def __getattr__(self, name: str) -> Any:
        if self.broken:
            raise RuntimeError(name)
        raise AttributeError(name)

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        pass


def location(obj: Any) -> str:
    return f"tests/test_registry.py:{inspect.getsourcelines(obj)[1]}"


@pytest.fixture
def bell_receivers() -> Iterator[None]:
    """One receiver of every kind on ``bell``, in this order; disconnected afterwards.

    The listener and callable object stay alive while the fixture's frame does."""
    listener, callable_receiver = Listener(), CallableReceiver()
    connections: list[tuple[Any, dict[str, Any]]] = [
        (plain, {}),
        (strong, {"weak": False}),
        (with_uid, {"dispatch_uid": "registry-test-uid"}),
        (for_topping, {"sender": Topping}),
        (for_kitchen, {"sender": Kitchen}),
        (asynchronous, {}),
        (listener.on_bell, {}),
        (callable_receiver, {}),
    ]
    for receiver, options in connections:
        bell.connect(receiver, **options)
    yield
    for receiver, options in connections:
        options.pop("weak", None)
        assert bell.disconnect(receiver, **options)


def traced(store: LatencyStore, signal: Signal, *senders: Any) -> None:
    """Send ``signal`` once per sender with tracing on, and record the events in ``store``."""
    with capture() as events:
        for sender in senders:
            signal.send(sender=sender)
    for event in events:
        store.record(event)


def info_of(registry: list[SignalInfo], signal: Signal) -> SignalInfo:
    [info] = [info for info in registry if info.signal is signal]
    return info


@pytest.mark.usefixtures("bell_receivers")
def test_every_receiver_field() -> None:
    store = LatencyStore()
    traced(store, bell, Kitchen)

    receivers = info_of(signal_registry(store), bell).receivers

    module = __name__
    # (label, defined at, sender, weak, dispatch_uid, is_async), in connection order.
    expected = [
        (f"{module}.plain", plain, None, True, None, False),
        (f"{module}.strong", strong, None, False, None, False),
        (f"{module}.with_uid", with_uid, None, True, "registry-test-uid", False),
        (f"{module}.for_topping", for_topping, "pizzeria.Topping", True, None, False),
        (f"{module}.for_kitchen", for_kitchen, f"{module}.Kitchen", True, None, False),
        (f"{module}.asynchronous", asynchronous, None, True, None, True),
        (f"{module}.Listener.on_bell", Listener.on_bell, None, True, None, False),
        (f"{module}.CallableReceiver", CallableReceiver.__call__, None, True, None, False),
    ]
    assert [(r.label, r.sender, r.weak, r.dispatch_uid, r.is_async) for r in receivers] == [
        (label, *rest) for label, _, *rest in expected
    ]
    # Locations are absolute paths: compare their ends.
    for receiver, (_, defined_at, *_) in zip(receivers, expected, strict=True):
        assert receiver.location.endswith(location(defined_at)), receiver.location
    assert [r.dead for r in receivers] == [False] * len(expected)


@pytest.mark.usefixtures("bell_receivers")
def test_sender_known_only_by_id() -> None:
    bell.connect(plain, sender=Stranger)
    try:
        store = LatencyStore()
        traced(store, bell, Kitchen)
        receiver = info_of(signal_registry(store), bell).receivers[-1]
    finally:
        bell.disconnect(plain, sender=Stranger)
    # Django 6 keeps a weak reference to the sender; 5.2 only its id.
    if django.VERSION >= (6,):
        assert receiver.sender == f"{__name__}.Stranger"
    else:
        assert receiver.sender == f"<sender id {id(Stranger):#x}>"
    assert receiver.label == f"{__name__}.plain"
    assert not receiver.dead


def test_django_signals_are_listed_as_builtin() -> None:
    registry = signal_registry(LatencyStore())

    info = info_of(registry, post_save)
    assert info.label == "django.db.models.signals.post_save"
    assert info.builtin
    assert (
        "signal_dashboard.demo.pizzeria.signals.order_saved",
        "pizzeria.Order",
    ) in [(r.label, r.sender) for r in info.receivers]
    labels = [info.label for info in registry]
    assert labels == sorted(labels)


def test_installed_app_signals_are_listed() -> None:
    info = info_of(signal_registry(LatencyStore()), pizza_done)

    assert info.label == "signal_dashboard.demo.pizzeria.signals.pizza_done"
    assert not info.builtin
    assert [(r.label, r.is_async, r.sender) for r in info.receivers] == [
        ("signal_dashboard.demo.pizzeria.signals.print_kitchen_tickets", False, None),
        ("signal_dashboard.demo.pizzeria.signals.check_oven", False, None),
        ("signal_dashboard.demo.pizzeria.signals.announce_pizza", True, None),
    ]
    assert (info.sends, info.empty_sends, info.last_sent) == (0, 0, None)


@pytest.mark.usefixtures("bell_receivers")
def test_signals_defined_elsewhere_are_listed_once_sent() -> None:
    store = LatencyStore()
    assert bell not in known_signals(store)

    traced(store, bell, Kitchen)

    assert [signal for signal in known_signals(store) if signal is bell] == [bell]
    assert info_of(signal_registry(store), bell).label == f"{__name__}.bell"


@pytest.mark.usefixtures("bell_receivers")
def test_usage_counts_calls_per_receiver() -> None:
    store = LatencyStore()
    before = time.time()
    traced(store, bell, Kitchen, Kitchen)
    after = time.time()

    info = info_of(signal_registry(store), bell)

    assert (info.sends, info.empty_sends) == (2, 0)
    assert info.last_sent is not None
    assert before - 1 <= info.last_sent <= after + 1
    never = f"{__name__}.for_topping"
    assert {r.label: r.calls for r in info.receivers} == {
        r.label: 0 if r.label == never else 2 for r in info.receivers
    }
    for receiver in info.receivers:
        if receiver.label == never:
            assert receiver.last_called is None
        else:
            assert receiver.last_called is not None
            assert before - 1 <= receiver.last_called <= after + 1


@pytest.mark.usefixtures("bell_receivers")
def test_usage_is_per_signal_and_per_sender() -> None:
    connections: list[tuple[Any, Any]] = [
        (plain, None),
        (for_topping, Kitchen),
        (for_topping, Topping),
    ]
    for receiver, sender in connections:
        gong.connect(receiver, sender=sender)
    try:
        store = LatencyStore()
        traced(store, bell, Kitchen)
        traced(store, gong, Kitchen, Kitchen, Topping)
        registry = signal_registry(store)
    finally:
        for receiver, sender in connections:
            gong.disconnect(receiver, sender=sender)

    assert [(r.label, r.sender, r.calls) for r in info_of(registry, gong).receivers] == [
        (f"{__name__}.plain", None, 3),
        (f"{__name__}.for_topping", f"{__name__}.Kitchen", 2),
        (f"{__name__}.for_topping", "pizzeria.Topping", 1),
    ]
    [bell_plain] = [r for r in info_of(registry, bell).receivers if r.label.endswith(".plain")]
    assert bell_plain.calls == 1


@pytest.mark.usefixtures("bell_receivers")
def test_default_store_is_the_recorders(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder.drain()  # earlier tests' sends belong to the store being replaced
    monkeypatch.setattr(recorder, "_latency", LatencyStore())
    with capture():
        bell.send(sender=Kitchen)

    info = info_of(signal_registry(), bell)

    assert info.sends == 1
    assert [r.calls for r in info.receivers if r.label.endswith(".strong")] == [1]


@pytest.mark.usefixtures("bell_receivers")
def test_dead_weak_receivers_are_listed_until_django_clears_them() -> None:
    store = LatencyStore()
    traced(store, bell, Kitchen)

    def doomed(sender: Any, **kwargs: Any) -> None:
        pass

    bell.connect(doomed)
    bell.connect(doomed, dispatch_uid="doomed-uid")
    bell.connect(Listener().on_bell)  # the instance dies at once: a classic mistake
    del doomed
    gc.collect()

    receivers = info_of(signal_registry(store), bell).receivers

    dead = ReceiverInfo(
        label=DEAD_RECEIVER,
        location="",
        sender=None,
        weak=True,
        dispatch_uid=None,
        is_async=False,
        dead=True,
        calls=0,
        last_called=None,
    )
    assert receivers[8:] == [dead, replace(dead, dispatch_uid="doomed-uid"), dead]
    assert not any(r.dead for r in receivers[:8])

    bell.send(sender=Kitchen)  # Django drops dead receivers on the next send

    receivers = info_of(signal_registry(store), bell).receivers
    assert len(receivers) == 8
    assert not any(r.dead for r in receivers)


def test_empty_sends_are_counted_when_recorded() -> None:
    store = LatencyStore()
    traced(store, silent, Kitchen)
    assert silent not in known_signals(store)

    with override_settings(SIGNAL_DASHBOARD={"ENABLED": True, "RECORD_EMPTY_SENDS": True}):
        traced(store, silent, Kitchen, Kitchen)

    info = info_of(signal_registry(store), silent)
    assert (info.sends, info.empty_sends, info.receivers) == (2, 2, [])
    assert info.last_sent is not None


@pytest.mark.usefixtures("bell_receivers")
def test_receivers_that_cannot_be_inspected_are_still_listed() -> None:
    unnameable = Unnameable()
    bell.connect(unnameable, sender=Topping, weak=False, dispatch_uid="unnameable")
    unnameable.broken = True
    try:
        store = LatencyStore()
        traced(store, bell, Kitchen)
        receiver = info_of(signal_registry(store), bell).receivers[-1]
    finally:
        bell.disconnect(sender=Topping, dispatch_uid="unnameable")

    assert (receiver.label, receiver.sender, receiver.weak, receiver.dispatch_uid) == (
        f"{__name__}.Unnameable",
        "pizzeria.Topping",
        False,
        "unnameable",
    )
    assert receiver.location.endswith(location(Unnameable.__call__))
    assert (receiver.calls, receiver.dead) == (0, False)


def test_receivers_of_a_sender_that_is_gone() -> None:
    # A signal of its own: on Django 5.2 the receiver stays connected for good.
    chime = Signal()
    chime.connect(strong)
    store = LatencyStore()
    traced(store, chime, Kitchen)
    ephemeral = type("Ephemeral", (), {})
    sender_id = id(ephemeral)
    chime.connect(plain, sender=ephemeral)
    del ephemeral
    gc.collect()

    receivers = info_of(signal_registry(store), chime).receivers

    assert [(r.label, r.sender) for r in receivers] == [
        (f"{__name__}.strong", None),
        (f"{__name__}.plain", f"<sender id {sender_id:#x}>"),
    ]
    # Django 6 holds the sender weakly, so the receiver dies with it; 5.2 keeps only its id.
    assert [r.dead for r in receivers] == [False, django.VERSION >= (6,)]


def test_signal_dashboards_own_receivers_are_not_listed_but_the_demos_are() -> None:
    from django.core.signals import setting_changed

    from signal_dashboard import conf
    from signal_dashboard.demo.pizzeria import signals as demo_signals

    registry = {info.label: info for info in signal_registry()}
    # The settings' reset, connected to setting_changed by conf.py, is ours: not the project's.
    changed = registry["django.core.signals.setting_changed"]
    assert conf.__file__ not in {
        receiver.location.rpartition(":")[0] for receiver in changed.receivers
    }
    assert setting_changed.has_listeners()
    demo = [
        receiver
        for info in registry.values()
        for receiver in info.receivers
        if receiver.location.startswith(demo_signals.__file__)
    ]
    assert demo  # the demo is a project like any other
