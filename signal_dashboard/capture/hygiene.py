"""Signal hygiene: what Django's signal docs warn about, seen as it happens.

``connect()`` and ``disconnect()`` are patched on the ``Signal`` class (with the send methods,
by ``patch.install()``); each calls Django's own first, so it returns and raises exactly as
before, then notes:

- **lost**: a weakly connected receiver (a local function, a bound method) that was
  garbage-collected, and so stopped running, without being disconnected;
- **doubled**: the same code connected to one signal again under another lookup key, for
  senders that overlap, so that it runs twice per send (``dispatch_uid`` is the fix);
- **connected**: a ``connect()`` made while a request or command runs (each one makes every
  later send slower);
- **disconnect missed**: a ``disconnect()`` that removed nothing (usually a wrong ``sender``
  or ``dispatch_uid``).

Each is a :class:`~.finding.Finding`: handed to the recorder like an event, so that it reaches the
dashboards, the Redis history and ``events.ndjson`` as a row and a record of its own type.
Nothing here keeps a receiver alive: a lost receiver must still be lost.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType, FrameType, FunctionType, MethodType
from typing import Any

import django
from django.dispatch import Signal, dispatcher

from .. import conf
from .context import PROCESS_ORIGIN, current_origin
from .finding import Finding
from .labels import note_receiver, receiver_key, receiver_label, signal_label
from .outbox import outbox

_DISPATCHER_FILE = dispatcher.__file__
_DJANGO_DIR = os.path.dirname(os.path.abspath(django.__file__)) + os.sep


@dataclass
class _Connection:
    code: Any  # labels.receiver_key(): the same code connected twice is doubled
    instance: int | None  # a bound method's instance id: two instances are two receivers
    sender: int  # the lookup id of the sender it is filtered to
    location: str
    finalizer: weakref.finalize | None


class Hygiene:
    """Connections as this module saw them made, and the findings so far."""

    def __init__(self) -> None:
        # Reentrant: a finalizer (_lost) may run inside the locked block of connect(), on the
        # same thread, whenever that block allocates and the garbage collector runs.
        self._lock = threading.RLock()
        # Per signal (by id, with a weak reference that forgets the signal's entry when it
        # goes): its connections by lookup key. References are made with weakref.ReferenceType,
        # not through the name weakref.ref, which a program (Django's tests) may patch.
        self._connections: dict[
            int, tuple[weakref.ReferenceType[Signal], dict[Any, _Connection]]
        ] = {}
        self.runtime_connects: Counter[str] = Counter()  # per signal label
        self.watchers: tuple[Callable[[Finding], None], ...] = ()
        self.failures = 0
        # Whether a receiver's code ran for a signal, as the sends' tracing saw it (set by
        # patch.install(); until then nothing was seen, so nothing is judged lost).
        self.ran: Callable[[Signal, Any], bool] = lambda signal, code: True

    def connected(
        self,
        signal: Signal,
        receiver: Any,
        sender: Any,
        weak: bool,
        dispatch_uid: Any,
        location: str,
    ) -> None:
        """Django's connect() added ``receiver`` to ``signal`` (called only when it did)."""
        lookup_key = (dispatch_uid or dispatcher._make_id(receiver), dispatcher._make_id(sender))
        code = note_receiver(receiver)
        # Two instances' methods, or two callable objects, are two receivers.
        instance = (
            id(receiver.__self__)
            if isinstance(receiver, MethodType)
            else None
            if isinstance(receiver, FunctionType)
            else id(receiver)
        )
        label = receiver_label(code)[0]
        signal_name = signal_label(signal)
        origin = current_origin.get()
        if origin is not PROCESS_ORIGIN and (
            origin.connects.pop((id(signal), lookup_key), _NEW) is _NEW
        ):
            # A finding only if still connected when its origin ends: a connect undone within
            # the request, command, task run or test (a middleware's, a test's setUp and
            # tearDown) leaves nothing growing, and one that puts back what it disconnected
            # changes nothing. See connects_left().
            origin.connects[(id(signal), lookup_key)] = Finding(
                "connected",
                signal_name,
                label,
                [location],
                origin.as_dict(),
                connected_ns=time.perf_counter_ns(),
            )
        with self._lock:
            known = self._known(signal)
            if lookup_key in known:
                return  # Django ignored it: connected already
            twin = next(
                (
                    other
                    for other in list(known.values())
                    if other.code == code
                    and other.instance == instance
                    and (_ANY in (other.sender, lookup_key[1]) or other.sender == lookup_key[1])
                ),
                None,
            )
            finalizer = None
            if weak and _can_be_lost(receiver):
                target = receiver.__self__ if isinstance(receiver, MethodType) else receiver
                try:
                    finalizer = weakref.finalize(
                        target,
                        self._lost,
                        weakref.ReferenceType(signal),
                        _weak_sender(sender),
                        # A bound method here never ran (see _can_be_lost()); other receivers
                        # are lost only if they never did.
                        None if isinstance(receiver, MethodType) else code,
                        lookup_key,
                        label,
                        location,
                        time.perf_counter_ns(),
                    )
                    finalizer.atexit = False
                except TypeError:  # not weakly referenceable: Django holds it strongly too
                    finalizer = None
            known[lookup_key] = _Connection(code, instance, lookup_key[1], location, finalizer)
        if twin is not None:
            self.found(Finding("doubled", signal_name, label, [twin.location, location]))

    def disconnected(
        self,
        signal: Signal,
        receiver: Any,
        sender: Any,
        dispatch_uid: Any,
        removed: bool,
        location: str,
    ) -> None:
        lookup_key = (dispatch_uid or dispatcher._make_id(receiver), dispatcher._make_id(sender))
        origin = current_origin.get()
        if removed and origin is not PROCESS_ORIGIN:
            key = (id(signal), lookup_key)
            if origin.connects.pop(key, _NEW) is _NEW:
                origin.connects[key] = _DISCONNECTED  # connected before: put back, no finding
        with self._lock:
            entry = self._connections.get(id(signal))
            connection = entry[1].pop(lookup_key, None) if entry is not None else None
        if connection is not None and connection.finalizer is not None:
            connection.finalizer.detach()  # disconnected on purpose: not a loss
        if not removed:
            label = receiver_label(receiver_key(receiver))[0] if receiver is not None else ""
            if dispatch_uid is not None:
                label = label or f"dispatch_uid={dispatch_uid!r}"
            self.found(Finding("disconnect_missed", signal_label(signal), label, [location]))

    def _lost(
        self,
        signal_ref: weakref.ReferenceType[Signal],
        sender_ref: weakref.ReferenceType[Any] | None,
        code: Any,
        lookup_key: Any,
        label: str,
        where: str,
        connected_ns: int,
    ) -> None:
        signal = signal_ref()
        if signal is None:
            return  # the signal went first: nothing lost that anyone could send to
        with self._lock:
            entry = self._connections.get(id(signal))
            if entry is not None:
                entry[1].pop(lookup_key, None)
        if sender_ref is not None and sender_ref() is None:
            # Its sender went first (or with it): it could never have run again. (The collector
            # clears every weak reference to what it collects before it calls any callback.)
            return
        if code is not None and self.ran(signal, code):
            # It did its work and was let go at the end of its scope (as tests do with local
            # receivers): a loss is a receiver collected before it ever ran.
            return
        self.found(Finding("lost", signal_label(signal), label, [where], connected_ns=connected_ns))

    def _known(self, signal: Signal) -> dict[Any, _Connection]:
        """The signal's connections (under the lock)."""
        key = id(signal)
        entry = self._connections.get(key)
        if entry is None or entry[0]() is not signal:
            reference = weakref.ReferenceType(signal, self._forget)
            entry = self._connections[key] = (reference, {})
        return entry[1]

    def _forget(self, reference: weakref.ReferenceType[Signal]) -> None:
        """A signal went: its entry goes (unless another signal has its id by now)."""
        for key, entry in list(self._connections.items()):
            if entry[0] is reference:
                self._connections.pop(key, None)

    def connects_left(self, origin: Any) -> None:
        """An origin ended: the connects it made and did not undo are findings now (off the
        sending thread, as the recorder takes the origin)."""
        left, origin.connects = origin.connects, {}
        for finding in left.values():
            if finding is not _DISCONNECTED:
                self.found(finding)

    def found(self, finding: Finding) -> None:
        """Hand a finding to the watchers (each has a scope of its own), and to the recorder
        if it is about the project's code (or HYGIENE_INCLUDE_INSTALLED asks for all)."""
        if finding.own or _include_installed():
            if finding.kind == "connected":
                self.runtime_connects[finding.signal] += 1
            outbox.put(finding)  # the recorder keeps it
        for watcher in self.watchers:
            watcher(finding)

    def watch(self, watcher: Callable[[Finding], None]) -> Callable[[], None]:
        """Call ``watcher(finding)`` for every finding from now on; returns the unwatch."""
        self.watchers = (*self.watchers, watcher)

        def unwatch() -> None:
            self.watchers = tuple(w for w in self.watchers if w is not watcher)

        return unwatch


_include_installed = conf.derived(lambda config: bool(config["HYGIENE_INCLUDE_INSTALLED"]))


def _can_be_lost(receiver: Any) -> bool:
    """Whether a weakly connected receiver's collection would be a loss worth reporting.

    A function its module holds by name goes only with its module: watching it would cost every
    connect() for nothing (Django's test client connects one around every request). A bound
    method goes with its instance, as weak connection intends (a storage's settings receiver
    with the storage), unless nothing but the method held that instance: then it was collected
    as soon as connect() returned, before it could ever run (``connect(Handler().method)``).
    """
    if isinstance(receiver, MethodType):
        return _instance_references(receiver) <= _UNOWNED_INSTANCE_REFERENCES
    name = getattr(receiver, "__qualname__", None)
    if type(receiver) is not FunctionType or name is None or "." in name:
        return True
    module = sys.modules.get(receiver.__module__)
    return getattr(module, name, None) is not receiver


def _instance_references(method: MethodType) -> int:
    return sys.getrefcount(method.__self__)


class _Probe:
    def method(self) -> None:
        return None


# What _instance_references() counts for an instance that only its bound method holds.
_UNOWNED_INSTANCE_REFERENCES = _instance_references(_Probe().method)


def _weak_sender(sender: Any) -> weakref.ReferenceType[Any] | None:
    """A weak reference to the sender a receiver is filtered to (None: any sender, or one that
    cannot be referenced weakly, such as a string)."""
    if sender is None:
        return None
    try:
        return weakref.ReferenceType(sender)
    except TypeError:
        return None


_ANY = dispatcher._make_id(None)
# In Origin.connects: no entry (_NEW), or a receiver connected before the origin and
# disconnected in it, which connecting again puts back.
_NEW = object()
_DISCONNECTED = object()
hygiene = Hygiene()


def caller_location(signal: Signal, receiver: Any, depth: int = 2) -> str:
    """``file:line`` of the code that called connect() or disconnect(): past Django's
    dispatcher (the @receiver decorator calls connect() from there) and the signal's own
    methods (ModelSignal.connect() calls Signal.connect() through a helper).

    When Django itself made the call for someone else (a model signal's lazy ``sender`` string,
    resolved once its model is registered), the receiver's own ``file:line`` stands for it.
    """
    frame: FrameType | None = sys._getframe(depth)
    while frame is not None and (
        frame.f_code.co_filename == _DISPATCHER_FILE or _is_method_of(frame, signal)
    ):
        frame = frame.f_back
    if frame is None:
        return ""
    filename = frame.f_code.co_filename
    if receiver is not None and filename.startswith(_DJANGO_DIR):
        defined = receiver_label(receiver_key(receiver))[1]
        if defined and not defined.startswith(_DJANGO_DIR):
            return defined
    return f"{filename}:{frame.f_lineno}"


def _is_method_of(frame: FrameType, signal: Signal) -> bool:
    # By the frame's code, never its f_locals: reading them keeps the caller's locals (the
    # receiver itself) alive with the frame, before Python 3.13.
    return frame.f_code in _method_codes(type(signal))


# id(signal class) -> (a weak reference to it, its methods' code). References are made with
# weakref.ReferenceType, as everywhere here (see Hygiene).
_codes_by_class: dict[int, tuple[weakref.ReferenceType[type], frozenset[CodeType]]] = {}


def _method_codes(kind: type) -> frozenset[CodeType]:
    """The code of the functions a signal class defines (and inherits), ModelSignal's helpers
    among them."""
    entry = _codes_by_class.get(id(kind))
    if entry is not None and entry[0]() is kind:
        return entry[1]
    codes = frozenset(
        code
        for cls in kind.__mro__
        for value in vars(cls).values()
        if (code := getattr(getattr(value, "__func__", value), "__code__", None)) is not None
    )
    reference = weakref.ReferenceType(kind, functools.partial(_forget_class, id(kind)))
    _codes_by_class[id(kind)] = (reference, codes)
    return codes


def _forget_class(ident: int, reference: weakref.ReferenceType[type]) -> None:
    entry = _codes_by_class.get(ident)
    if entry is not None and entry[0] is reference:
        del _codes_by_class[ident]


def _added(before: list[Any], after: list[Any]) -> bool:
    """Whether Django's connect() added an entry to the signal's receivers (``before`` holds
    the old entries, so their ids stay theirs). It adds nothing for a lookup key it has."""
    known = set(map(id, before))
    return any(id(entry) not in known for entry in after)


# Called after every connect() once tracing is installed: signals defined by modules imported
# since (tasks.notice()) are recognised as they get their first receivers.
after_connect: Callable[[], None] | None = None


def _make_connect(original: Callable[..., Any]) -> Callable[..., Any]:
    def connect(
        self: Signal,
        receiver: Any,
        sender: Any = None,
        weak: bool = True,
        dispatch_uid: Any = None,
    ) -> Any:
        before = list(self.receivers)
        result = original(self, receiver, sender, weak, dispatch_uid)
        try:
            if after_connect is not None:
                after_connect()
            if _added(before, self.receivers):
                location = caller_location(self, receiver)
                hygiene.connected(self, receiver, sender, weak, dispatch_uid, location)
        except Exception:
            hygiene.failures += 1
        return result

    # Django and projects read the patched method's attributes: _check_lazy_references()
    # recognises a pending model-signal connect() by its __module__ and __name__.
    return functools.wraps(original)(connect)


def _make_disconnect(original: Callable[..., Any]) -> Callable[..., Any]:
    def disconnect(
        self: Signal, receiver: Any = None, sender: Any = None, dispatch_uid: Any = None
    ) -> Any:
        removed = original(self, receiver, sender, dispatch_uid)
        try:
            location = caller_location(self, receiver)
            hygiene.disconnected(self, receiver, sender, dispatch_uid, bool(removed), location)
        except Exception:
            hygiene.failures += 1
        return removed

    return functools.wraps(original)(disconnect)


PATCHES = (("connect", _make_connect), ("disconnect", _make_disconnect))
