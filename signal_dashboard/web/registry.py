"""The signal registry: every known signal, its connected receivers, and how much each was used.

Data for the "Registry and coverage" page. Receivers are read from ``Signal.receivers``, whose
entries are laid out differently in Django 5.2 and 6.x (see :func:`_receiver_info`). The result
holds labels, never a receiver, so it keeps no weakly connected receiver alive.

A weak receiver that was garbage-collected but not yet cleaned up by Django (it does so on the
signal's next send, connect or disconnect) is listed with ``dead=True`` and the label
:data:`DEAD_RECEIVER`: its name went with it. A receiver filtered to a sender that was
garbage-collected (Django 6.x keeps a weak reference to the sender) is dead too.
"""

from __future__ import annotations

import sys
import weakref
from dataclasses import dataclass
from types import MethodType
from typing import Any

from django.apps import apps
from django.dispatch import Signal

# Django's own id function: a connect() without dispatch_uid stores _make_id(receiver), so
# comparing with it tells a dispatch_uid apart. It is the same in Django 5.2 and 6.x.
from django.dispatch.dispatcher import _make_id

from ..capture.labels import (
    Handle,
    key_label,
    note_receiver,
    receiver_label,
    sender_label,
    signal_label,
)
from ..capture.locations import is_ours
from ..record.stats.store import LatencyStore

DEAD_RECEIVER = "<dead receiver>"

# What Django stores as the sender id of a receiver connected for any sender.
_ANY_SENDER = id(None)


@dataclass(frozen=True)
class ReceiverInfo:
    """One connected receiver of a signal."""

    label: str  # module.qualname, or DEAD_RECEIVER
    location: str  # file:line, "" when unknown
    sender: str | None  # label of the sender it is filtered to; None: any sender
    weak: bool
    dispatch_uid: str | None
    is_async: bool
    dead: bool
    calls: int  # since start, for this signal (and this sender, when filtered to one)
    last_called: float | None  # wall-clock seconds since the epoch
    # For a bound method, the id of its instance: methods of two instances are two receivers.
    instance_id: int | None = None


@dataclass(frozen=True)
class SignalInfo:
    """One signal, its receivers in connection order, and its sends."""

    label: str
    signal: Signal
    builtin: bool  # defined by Django itself
    receivers: list[ReceiverInfo]
    sends: int
    empty_sends: int  # counted only while RECORD_EMPTY_SENDS is on
    last_sent: float | None


# Per (signal, receiver key, sender label), and per (signal, receiver key, None) over every
# sender: (calls, wall-clock ns of the last one).
_Usage = dict[tuple[Any, Any, str | None], tuple[int, int]]


def known_signals(store: LatencyStore | None = None) -> list[Signal]:
    """Signals defined at module level in Django or an installed app, plus every signal the
    latency store has seen sent; sorted by label. No module is imported."""
    store = _default_store() if store is None else store
    packages = ["django"]
    if apps.apps_ready:
        packages += [config.name for config in apps.get_app_configs()]
    exact, nested = set(packages), tuple(f"{name}." for name in packages)
    found: dict[int, Signal] = {}
    for name, module in list(sys.modules.items()):
        if name not in exact and not name.startswith(nested):
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for value in list(namespace.values()):
            # type(), not isinstance(): isinstance() would evaluate lazy objects such as
            # django.conf.settings through their __class__.
            if issubclass(type(value), Signal):
                found[id(value)] = value
    for key, _ in list(store.sends):
        signal = _alive(key)
        if signal is not None:
            found[id(signal)] = signal
    return sorted(found.values(), key=signal_label)


def _alive(key: Any) -> Any:
    """The signal or sender class a store's handle names, None if it is gone; other keys as
    they are."""
    return key() if type(key) is Handle else key


def signal_registry(store: LatencyStore | None = None) -> list[SignalInfo]:
    """Every known signal with its receivers and usage, from ``store`` (default: the
    recorder's)."""
    store = _default_store() if store is None else store
    usage = _call_usage(store)
    senders = _senders_by_id(store)
    signal_usage = {_alive(key): usage for key, usage in store.signal_usage().items()}
    registry = []
    for signal in known_signals(store):
        label = signal_label(signal)
        sends, empty_sends, last_sent = signal_usage.get(signal, (0, 0, 0.0))
        registry.append(
            SignalInfo(
                label=label,
                signal=signal,
                builtin=label.startswith("django."),
                receivers=_receivers(signal, usage, senders),
                sends=sends,
                empty_sends=empty_sends,
                last_sent=last_sent if sends else None,
            )
        )
    return registry


@dataclass(frozen=True)
class Doubled:
    """One receiver (the same code, so the same label and location) connected to a signal
    more than once for the same sender (or for any sender): it runs that many times per send
    from that sender."""

    signal: str
    receiver: str
    location: str
    senders: list[str | None]  # the connections that run together (None: for any sender)
    runs: int  # how many times it runs per send from ``runs_for``
    runs_for: str | None  # the sender (None: any sender)


def doubled_receivers(registry: list[SignalInfo] | None = None) -> list[Doubled]:
    """Receivers that run more than once per send: connected more than once to one signal
    under different lookup keys, for the same sender or for any sender (a module imported under
    two names, or a connect() that runs more than once without a ``dispatch_uid``). A receiver
    connected once for each of several senders runs once per send, and is not one."""
    found = []
    for info in signal_registry() if registry is None else registry:
        by_code: dict[tuple[str, str, int | None], list[ReceiverInfo]] = {}
        for receiver in info.receivers:
            if not receiver.dead and receiver.location:
                key = (receiver.label, receiver.location, receiver.instance_id)
                by_code.setdefault(key, []).append(receiver)
        for (label, location, _), same in by_code.items():
            senders = [receiver.sender for receiver in same]
            # A send from a sender runs the connections for it and those for any sender: one
            # entry for any sender, and one for each sender that adds to it.
            anywhere = senders.count(None)
            if anywhere > 1:
                running = [None] * anywhere
                found.append(Doubled(info.label, label, location, running, anywhere, None))
            for sender in sorted({sender for sender in senders if sender is not None}):
                together = senders.count(sender) + anywhere
                if together > max(anywhere, 1):
                    running = [each for each in senders if each in (None, sender)]
                    found.append(Doubled(info.label, label, location, running, together, sender))
    return found


def _default_store() -> LatencyStore:
    # Read at call time: the recorder replaces its store when the stats window setting changes.
    from ..record.recorder import recorder

    return recorder.latency


def _call_usage(store: LatencyStore) -> _Usage:
    usage: _Usage = {}
    for (signal_key, sender, receiver), series in list(store.calls.items()):
        signal = _alive(signal_key)
        for key in ((signal, receiver, key_label(sender)), (signal, receiver, None)):
            count, last = usage.get(key, (0, 0))
            usage[key] = (count + series.total.count, max(last, series.last_ns))
    return usage


def _senders_by_id(store: LatencyStore) -> dict[int, Any]:
    """Senders a receiver may be filtered to, by id: Django 5.2 stores only the sender's id."""
    kept = (_alive(key) for _, key in list(store.sends) if type(key) in (Handle, str))
    senders: list[Any] = [sender for sender in kept if sender is not None]
    if apps.models_ready:
        senders += apps.get_models(include_auto_created=True, include_swapped=True)
    return {id(sender): sender for sender in senders}


def _receivers(signal: Signal, usage: _Usage, senders: dict[int, Any]) -> list[ReceiverInfo]:
    try:
        with signal.lock:
            entries = list(signal.receivers)
    except AttributeError:  # a Signal subclass that did not run Signal.__init__()
        return []
    infos = (_receiver_info(signal, entry, usage, senders) for entry in entries)
    # signal_dashboard's own receivers (the settings' reset) are not the project's to read.
    return [info for info in infos if info is not None and not is_ours(info.location)]


def _receiver_info(
    signal: Signal, entry: Any, usage: _Usage, senders: dict[int, Any]
) -> ReceiverInfo | None:
    """One ``Signal.receivers`` entry; None for a layout this Django version should not have."""
    match entry:
        case ((lookup_id, sender_id), reference, is_async):  # Django 5.2
            sender, named, sender_gone = _sender(sender_id, None, senders)
        case ((lookup_id, sender_id), reference, sender_ref, is_async):  # Django 6.x
            sender, named, sender_gone = _sender(sender_id, sender_ref, senders)
        case _:
            return None
    weak = isinstance(reference, weakref.ReferenceType)
    receiver = reference() if weak else reference
    if receiver is None:
        key, label, location = None, DEAD_RECEIVER, ""
        dispatch_uid = None if _is_receiver_id(lookup_id) else _text(lookup_id)
    else:
        key, label, location = _label(receiver)
        dispatch_uid = None if _is_id_of(lookup_id, receiver) else _text(lookup_id)
    # A sender that cannot be named (only its id is known) counts every sender's calls: better
    # overcount than report a receiver that ran as never called.
    scope = sender if named else None
    calls, last_ns = usage.get((signal, key, scope), (0, 0)) if key is not None else (0, 0)
    return ReceiverInfo(
        label=label,
        location=location,
        sender=sender,
        weak=weak,
        dispatch_uid=dispatch_uid,
        is_async=bool(is_async),
        dead=receiver is None or sender_gone,
        calls=calls,
        last_called=last_ns / 1e9 if calls else None,
        instance_id=id(receiver.__self__) if isinstance(receiver, MethodType) else None,
    )


def _sender(
    sender_id: Any, sender_ref: weakref.ReferenceType | None, senders: dict[int, Any]
) -> tuple[str | None, bool, bool]:
    """The label of the sender a receiver is filtered to (None: any sender), whether that label
    names it (rather than showing its id), and whether the sender is gone."""
    if sender_id == _ANY_SENDER:
        return None, True, False
    if sender_ref is not None:
        sender = sender_ref()
        if sender is None:
            return _unnamed_sender(sender_id), False, True
        return sender_label(sender), True, False
    if sender_id in senders:
        return sender_label(senders[sender_id]), True, False
    return _unnamed_sender(sender_id), False, False


def _unnamed_sender(sender_id: Any) -> str:
    # A bound method's id is a pair of ints.
    ids = sender_id if isinstance(sender_id, tuple) else (sender_id,)
    return f"<sender id {', '.join(f'{i:#x}' for i in ids if isinstance(i, int))}>"


def _label(receiver: Any) -> tuple[Any, str, str]:
    """The receiver's key (see labels.receiver_key()), label and location."""
    try:
        key = note_receiver(receiver)
    except Exception:  # attribute access on a callable object is user code
        key = type(receiver)
    try:
        return (key, *receiver_label(key))
    except Exception:
        return key, f"<{type(receiver).__qualname__}>", ""


def _is_id_of(lookup_id: Any, receiver: Any) -> bool:
    try:
        return lookup_id == _make_id(receiver)
    except Exception:  # _make_id() reads attributes of the receiver: user code
        return _is_receiver_id(lookup_id)


def _is_receiver_id(lookup_id: Any) -> bool:
    """Whether a lookup id looks made by _make_id(), for a receiver that is gone."""
    match lookup_id:
        case int() | (int(), int()):
            return True
    return False


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__qualname__}>"
