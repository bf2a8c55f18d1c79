"""install()/uninstall(): the Signal patch that times every receiver of every send.

Longer than most modules, on purpose: the receiver loops cannot be shared between ``send()``
and ``asend()``'s helper without adding a frame between a send and its receivers (see below),
so each lives where Django's own does, beside the code that opens and finishes a traced send.

The four send methods are replaced on the ``Signal`` class, so every instance is traced,
whenever it was created. Each replacement dispatches exactly as Django's own method does,
using ``Signal._live_receivers(sender) -> (sync, async)`` (stable across Django 5.2 and
6.x), and returns ``(receiver, response)`` pairs holding the receivers themselves.
``has_listeners()`` and the receivers' bookkeeping are left alone. A send that
IGNORE_SIGNALS or IGNORE_SENDERS leaves out runs the same code without an event: dispatched
alike, it leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from time import perf_counter_ns
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.core.management.base import BaseCommand
from django.core.signals import request_finished, request_started
from django.dispatch import Signal, dispatcher

from . import conf, hygiene, payload
from .context import (
    PROCESS_ORIGIN,
    SUSPENDED,
    Origin,
    current_event,
    current_origin,
    sync_send,
)
from .errors import ErrorInfo
from .events import (
    CALL_DURATION,
    CALL_ERROR,
    Call,
    LightSend,
    Pair,
    SignalEvent,
    call_duration,
    error_info,
    summarize_result,
)
from .labels import callable_key, handle_of, receiver_key, sender_label, signal_at
from .recorder import recorder

logger = logging.getLogger("signal_dashboard")

NO_RECEIVERS = dispatcher.NO_RECEIVERS

# Django 6.0 runs asend()'s sync receivers before its async ones, and async receivers in a
# TaskGroup sharing one context (dispatcher._run_parallel); 5.2 gathers them all at once.
_run_parallel: Callable[..., Coroutine[Any, Any, list[Any]]] | None = getattr(
    dispatcher, "_run_parallel", None
)
_SYNC_BEFORE_ASYNC = _run_parallel is not None

# The original methods, set while tracing is installed.
_originals: dict[tuple[type, str], Callable[..., Any]] = {}
# Read by every send: kept here, set by _read_settings() (RECORD_EMPTY_SENDS, DETAIL_LIMIT,
# None for every send in full, SLOW_MS, and IGNORE_SIGNALS and IGNORE_SENDERS: the signals
# their paths name, held as their modules hold them, and the sender labels).
_record_empty_sends = False
_detail_limit: int | None = None
_slow_ns = 100_000_000
_ignored_signals: frozenset[Signal] = frozenset()
_ignored_senders: frozenset[str] = frozenset()
_only_signals: frozenset[Signal] = frozenset()  # TRACE_ONLY_SIGNALS; empty: every signal
# Called with the signal of each send that reached no receiver (see watch_empty_sends()).
_empty_watchers: tuple[Callable[[Signal], None], ...] = ()
# False while recording is stopped (the dashboard's switch, see set_recording()).
_recording = True

# capture() blocks open that want every send in full.
_full_detail = 0
_SECOND_NS = 1_000_000_000


class _Failures:
    """Tracing's own failures: counted, logged the first time, never raised into the app."""

    count = 0

    @classmethod
    def add(cls) -> None:
        cls.count += 1
        if cls.count == 1:
            logger.exception(
                "signal_dashboard could not trace a signal; the signal was sent normally. "
                "Further tracing failures are counted, not logged."
            )


def tracing_failures() -> int:
    """How many times tracing failed (the signals themselves were sent normally)."""
    return _Failures.count + payload.failures


# --- The hot path -------------------------------------------------------------------------
# Everything here runs for every traced send: no I/O, no locks, no repr() of user objects.
# Receivers are named by their code object (see labels.receiver_key()), so an event never
# holds a receiver; the rare results and exceptions are summarized as they happen.


def _finish(event: SignalEvent, end_ns: int | None = None) -> None:
    """Time the send (it ended at ``end_ns`` if known), count it for its request, and hand it
    to the recorder."""
    try:
        event.duration_ns = (end_ns or perf_counter_ns()) - event.start_ns
        origin = event.origin
        if origin is not PROCESS_ORIGIN:
            # Read by the request's Server-Timing header before the recorder gets to it.
            origin.signal_count += 1
            if event.parent is None:  # nested sends run inside their parent's receivers
                origin.receiver_ns += sum(map(call_duration, event.calls))
        if recorder.immediate:  # first: a drain may take the event as soon as it is recorded
            recorder.notify_immediate(event)
        recorder.record(event)
    except Exception:
        _Failures.add()


def _finish_light(
    send: LightSend,
    end_ns: int | None,
    signal: Signal,
    sender: Any,
    method: str,
    named: dict[str, Any],
) -> None:
    """_finish() for a light send: one that turned out to be an outlier (a receiver raised, or
    took SLOW_MS) becomes the full event, its kwargs read now."""
    try:
        end = end_ns or perf_counter_ns()
        send.duration_ns = end - send.start_ns
        slow_ns = _slow_ns
        for call in send.calls:
            if call[CALL_ERROR] is not None or call[CALL_DURATION] >= slow_ns:
                _finish(send.promote(signal, sender, method, named), end)
                return
        origin = send.origin
        if origin is not PROCESS_ORIGIN:
            origin.signal_count += 1
            if send.parent is None:
                origin.receiver_ns += sum(map(call_duration, send.calls))
        recorder.record(send)  # type: ignore[arg-type]
    except Exception:
        _Failures.add()


def _failed_call(receiver: Any, is_async: bool, start: int, err: BaseException) -> Call:
    end = perf_counter_ns()
    try:
        info = error_info(err)
    except Exception:
        _Failures.add()
        info = ErrorInfo(type(err).__qualname__, "", "")
    return (receiver_key(receiver), is_async, start, end - start, None, info)


def _result(response: Any) -> Any:
    try:
        return summarize_result(response)
    except Exception:
        _Failures.add()
        return None


# A receiver is called by the frame of ours that stands where Django's own frame would: the
# patched send() itself, a helper run by sync_to_async() where Django runs a local function,
# and for async receivers a coroutine of ours where Django has one (a robust send's wrapper,
# Django 6's task runner). So a receiver's warnings.warn(stacklevel=N) and its caller's frames
# are what they are without tracing.


def _call_sync(
    event: SignalEvent | LightSend | None,
    signal: Signal,
    sender: Any,
    named: dict[str, Any],
    receivers: list[Callable[..., Any]],
    robust: bool,
) -> list[tuple[Callable[..., Any], Any]]:
    """asend()'s sync receivers, in the frame where Django's asend() has ``sync_send()``.

    The same loop as send()'s, which runs its receivers in its own frame.
    """
    responses = []
    start = perf_counter_ns()
    for receiver in receivers:
        try:
            response = receiver(signal=signal, sender=sender, **named)
        except Exception as err:
            if event is not None:
                event.calls.append(_failed_call(receiver, False, start, err))
            if not robust:
                raise
            signal._log_robust_failure(receiver, err)
            responses.append((receiver, err))
            start = perf_counter_ns()
            continue
        except BaseException as err:
            if event is not None:
                event.calls.append(_failed_call(receiver, False, start, err))
            raise
        end = perf_counter_ns()
        if event is not None:
            event.calls.append(
                (
                    receiver_key(receiver),
                    False,
                    start,
                    end - start,
                    _result(response) if response is not None and event.detailed else None,
                    None,
                )
            )
        responses.append((receiver, response))
        start = end
    return responses


async def _call_one_async(
    event: SignalEvent | LightSend | None,
    signal: Signal,
    sender: Any,
    named: dict[str, Any],
    receiver: Callable[..., Any],
    robust: bool,
) -> Any:
    """One async receiver, timed; a robust send's failure is returned, as Django does."""
    start = perf_counter_ns()
    try:
        response = await receiver(signal=signal, sender=sender, **named)
    except Exception as err:
        if event is not None:
            event.calls.append(_failed_call(receiver, True, start, err))
        if not robust:
            raise
        signal._log_robust_failure(receiver, err)
        return err
    except BaseException as err:
        if event is not None:
            event.calls.append(_failed_call(receiver, True, start, err))
        raise
    if event is not None:
        duration = perf_counter_ns() - start
        result = _result(response) if response is not None and event.detailed else None
        event.calls.append((receiver_key(receiver), True, start, duration, result, None))
    return response


async def _run_as_tasks(coroutines: list[Coroutine[Any, Any, Any]]) -> list[Any]:
    """Django 6's ``_run_parallel()``, with each coroutine run as its task's own: there,
    ``run()`` awaits the receiver; here ``_call_one_async()`` does, in its place."""
    if not coroutines:
        return []
    context = contextvars.copy_context()
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine, context=context) for coroutine in coroutines]
        return [task.result() for task in tasks]
    except BaseExceptionGroup as exception_group:
        if len(exception_group.exceptions) == 1:
            raise exception_group.exceptions[0]  # noqa: B904  (as Django raises it)
        raise
    finally:
        dispatcher._restore_context(context=context)


async def _call_async(
    event: SignalEvent | LightSend | None,
    signal: Signal,
    sender: Any,
    named: dict[str, Any],
    receivers: list[Callable[..., Any]],
    robust: bool,
) -> list[Any]:
    """Django's concurrent run of async receivers, each timed: their responses in order."""
    coroutines = [_call_one_async(event, signal, sender, named, r, robust) for r in receivers]
    if _run_parallel is None:  # Django 5.2
        return await asyncio.gather(*coroutines)
    if robust:  # Django 6 runs each robust receiver's wrapper under its task runner
        return await _run_parallel(*coroutines)
    return await _run_as_tasks(coroutines)


async def _call_async_pairs(
    event: SignalEvent | LightSend | None,
    signal: Signal,
    sender: Any,
    named: dict[str, Any],
    receivers: list[Callable[..., Any]],
    robust: bool,
) -> list[tuple[Callable[..., Any], Any]]:
    responses = await _call_async(event, signal, sender, named, receivers, robust)
    return list(zip(receivers, responses, strict=True))


async def _no_responses() -> list[tuple[Callable[..., Any], Any]]:
    return []


def _current_parent() -> Any:
    """The send whose receivers are running here (None if none), or SUSPENDED."""
    parent = current_event.get()
    if parent is SUSPENDED:
        return parent
    running = sync_send.event
    # Normally at most one of the two is set. Both are when a receiver's async_to_sync() or
    # asyncio.run() leads back to this thread: the one that started later is the closer parent.
    if running is not None and (parent is None or running.start_ns > parent.start_ns):
        return running
    return parent


def _new_event(
    signal: Signal, sender: Any, named: dict[str, Any], method: str, parent: Any
) -> SignalEvent | LightSend | None:
    """The event of a send with receivers (a light one past the detail limit of its signal and
    sender in its origin), or None if it is not traced."""
    if parent is SUSPENDED:
        return None
    try:
        if not _recording:
            return None
        if _ignored_signals and signal in _ignored_signals:
            return None
        if _only_signals and signal not in _only_signals:
            return None
        if _ignored_senders and _ignores_sender(sender):
            return None
        if parent is not None:
            origin = parent.origin
        elif signal is request_started or signal is request_finished:
            origin = _request_boundary_origin(signal, named)
            if origin is None:
                return None
        else:
            origin = current_origin.get()
        if _detail_limit is not None and not _full_detail:
            now = perf_counter_ns()
            sent = origin.sent
            if origin is PROCESS_ORIGIN and now - origin.sent_since >= _SECOND_NS:
                sent.clear()  # outside requests and commands, the limit is per second
                origin.sent_since = now
            key = (id(signal), id(sender))
            pair = sent.get(key)
            if pair is None or not pair.names(signal, sender):
                pair = sent[key] = Pair(signal, sender)
            pair.count += 1
            if pair.count > _detail_limit and pair.foldable:
                return LightSend(pair, parent, origin, now)
        return SignalEvent(signal, sender, method, named, parent, origin, perf_counter_ns())
    except Exception:
        _Failures.add()
        return None


def _ignores_sender(sender: Any) -> bool:
    """Whether IGNORE_SENDERS names the sender: a class by its handle's label, made once per
    class and held weakly, as events name it."""
    if isinstance(sender, type):
        return handle_of(sender).label in _ignored_senders
    return sender_label(sender) in _ignored_senders


def _request_boundary_origin(signal: Signal, named: dict[str, Any]) -> Origin | None:
    """The request a request_started or request_finished send belongs to (None: a request
    that is not traced)."""
    from .middleware import finished_origin, started_origin  # it needs the settings

    if signal is request_started:
        return started_origin(named, current_origin.get())
    return finished_origin(current_origin.get())


def _record_empty(signal: Signal, sender: Any, named: dict[str, Any], method: str) -> None:
    for watcher in _empty_watchers:
        try:
            watcher(signal)
        except Exception:
            _Failures.add()
    if not _record_empty_sends:
        return
    event = _new_event(signal, sender, named, method, _current_parent())
    if type(event) is LightSend:
        _finish_light(event, None, signal, sender, method, named)
    elif event is not None:
        _finish(event)


def _make_send(method: str, robust: bool) -> Callable[..., Any]:
    original = getattr(Signal, method)

    def send(self: Signal, sender: Any, **named: Any) -> list[tuple[Any, Any]]:
        if not self.receivers or self.sender_receivers_cache.get(sender) is NO_RECEIVERS:
            if _record_empty_sends or _empty_watchers:
                _record_empty(self, sender, named, method)
            return []
        sync_receivers, async_receivers = self._live_receivers(sender)
        if not sync_receivers and not async_receivers:
            if _record_empty_sends or _empty_watchers:
                _record_empty(self, sender, named, method)
            return []
        outer = sync_send.event
        parent = current_event.get()  # _current_parent(), inlined: this runs for every send
        if (
            parent is not SUSPENDED
            and outer is not None
            and (parent is None or outer.start_ns > parent.start_ns)
        ):
            parent = outer
        event = _new_event(self, sender, named, method, parent)
        responses = []
        end: int | None = None
        # The receivers are called here, in this frame, as Django's send() calls them in its
        # own: the loop is _call_sync()'s, which cannot be called without adding a frame.
        if event is not None:  # else sends made by the receivers keep this send's parent
            sync_send.event = event
        try:
            start = event.start_ns if event is not None else 0
            for receiver in sync_receivers:
                try:
                    response = receiver(signal=self, sender=sender, **named)
                except Exception as err:
                    if event is not None:
                        event.calls.append(_failed_call(receiver, False, start, err))
                    if not robust:
                        raise
                    self._log_robust_failure(receiver, err)
                    responses.append((receiver, err))
                    start = perf_counter_ns()
                    continue
                except BaseException as err:
                    if event is not None:
                        event.calls.append(_failed_call(receiver, False, start, err))
                    raise
                end = perf_counter_ns()
                if event is not None:
                    event.calls.append(
                        (
                            getattr(receiver, "__code__", None)
                            or callable_key(receiver),  # receiver_key()
                            False,
                            start,
                            end - start,
                            _result(response) if response is not None and event.detailed else None,
                            None,
                        )
                    )
                responses.append((receiver, response))
                start = end
            end = start  # the last receiver's end (or the send's start, with none)
            if async_receivers:
                end = None
                # Copied into the receivers' context: the parent of the sends they make.
                token = current_event.set(parent if event is None else event)
                try:
                    responses.extend(
                        async_to_sync(_call_async_pairs)(
                            event, self, sender, named, async_receivers, robust
                        )
                    )
                finally:
                    current_event.reset(token)
            return responses
        finally:
            sync_send.event = outer
            if type(event) is LightSend:
                _finish_light(event, end, self, sender, method, named)
            elif event is not None:
                _finish(event, end)

    return functools.wraps(original)(send)


def _make_asend(method: str, robust: bool) -> Callable[..., Any]:
    original = getattr(Signal, method)

    async def asend(self: Signal, sender: Any, **named: Any) -> list[tuple[Any, Any]]:
        if not self.receivers or self.sender_receivers_cache.get(sender) is NO_RECEIVERS:
            if _record_empty_sends or _empty_watchers:
                _record_empty(self, sender, named, method)
            return []
        sync_receivers, async_receivers = self._live_receivers(sender)
        if not sync_receivers and not async_receivers:
            if _record_empty_sends or _empty_watchers:
                _record_empty(self, sender, named, method)
            return []
        event = _new_event(self, sender, named, method, _current_parent())
        token = current_event.set(event) if event is not None else None
        try:
            sync_part = (
                sync_to_async(_call_sync)(event, self, sender, named, sync_receivers, robust)
                if sync_receivers
                else _no_responses()
            )
            if _SYNC_BEFORE_ASYNC:
                responses = await sync_part
                async_responses = await _call_async(
                    event, self, sender, named, async_receivers, robust
                )
            else:
                # Django 5.2: one gather of both parts, so the async receivers start at once.
                responses, async_responses = await asyncio.gather(
                    sync_part,
                    asyncio.gather(
                        *(
                            _call_one_async(event, self, sender, named, r, robust)
                            for r in async_receivers
                        )
                    ),
                )
            responses.extend(zip(async_receivers, async_responses, strict=True))
            return responses
        finally:
            if token is not None:
                current_event.reset(token)
            if type(event) is LightSend:
                _finish_light(event, None, self, sender, method, named)
            elif event is not None:
                _finish(event)

    return functools.wraps(original)(asend)


# --- Origin of sends outside requests -------------------------------------------------------


def _make_execute() -> Callable[..., Any]:
    original = BaseCommand.execute

    def execute(self: BaseCommand, *args: Any, **options: Any) -> Any:
        if current_origin.get().kind == "request":
            return original(self, *args, **options)
        name = type(self).__module__.rpartition(".")[2]
        origin = Origin(kind="command", name=name, started_ns=perf_counter_ns())
        token = current_origin.set(origin)
        try:
            return original(self, *args, **options)
        except BaseException as err:
            try:
                message = str(err)[:200]
            except Exception:  # str() of an exception is user code
                message = ""
            origin.error = f"{type(err).__qualname__}: {message}"
            raise
        finally:
            current_origin.reset(token)
            origin.duration_ns = perf_counter_ns() - origin.started_ns
            try:
                recorder.record_request(origin)
            except Exception:
                _Failures.add()

    return functools.wraps(original)(execute)


# --- install / uninstall --------------------------------------------------------------------

_PATCHES: tuple[tuple[type, str, Callable[[], Callable[..., Any]]], ...] = (
    (Signal, "send", lambda: _make_send("send", robust=False)),
    (Signal, "send_robust", lambda: _make_send("send_robust", robust=True)),
    (Signal, "asend", lambda: _make_asend("asend", robust=False)),
    (Signal, "asend_robust", lambda: _make_asend("asend_robust", robust=True)),
    (BaseCommand, "execute", _make_execute),
    # Signal hygiene (hygiene.py): connect() and disconnect() as Django's, then noted.
    *(
        (Signal, name, functools.partial(make, Signal.__dict__[name]))
        for name, make in hygiene.PATCHES
    ),
)


def watch_empty_sends(watcher: Callable[[Signal], None]) -> Callable[[], None]:
    """Call ``watcher(signal)`` on the sending thread for every send that reaches no receiver
    (which is recorded only with RECORD_EMPTY_SENDS); returns the function that stops it."""
    global _empty_watchers
    _empty_watchers = (*_empty_watchers, watcher)

    def unwatch() -> None:
        global _empty_watchers
        _empty_watchers = tuple(w for w in _empty_watchers if w is not watcher)

    return unwatch


def _ran(signal: Signal, code: Any) -> bool:
    """Whether receiver ``code`` ran for ``signal`` as traced (hygiene's test of a loss). A
    signal whose sends are not traced, or not now, cannot tell: taken as ran."""
    if not _recording or signal in _ignored_signals:
        return True
    if _only_signals and signal not in _only_signals:
        return True
    return recorder.ran(signal, code)


def set_recording(on: bool) -> None:
    """Trace sends (the default), or run them untraced while tracing stays installed: the
    dashboard's "Stop recording", which a backend applies in every process it reaches."""
    global _recording
    _recording = on


def is_recording() -> bool:
    return _recording


def is_installed() -> bool:
    return bool(_originals)


def _as_list(names: str | Iterable[str]) -> Iterable[str]:
    # One name, not a sequence of one-letter names (system check E003 reports it).
    return (names,) if isinstance(names, str) else names


def _signals_at(paths: Iterable[str]) -> Iterator[Signal]:
    """The signals the dotted paths name, leaving out those that do not name one: system check
    W004 reports them. (A module that cannot be imported yet, before the apps are ready, is
    tried again whenever the settings are read again, as install() does.)"""
    for path in paths:
        try:
            yield signal_at(path)
        except Exception:
            continue


@conf.on_change
def _read_settings(config: dict[str, Any]) -> None:
    global _record_empty_sends, _detail_limit, _slow_ns
    global _ignored_signals, _ignored_senders, _only_signals
    _record_empty_sends = bool(config["RECORD_EMPTY_SENDS"])
    limit = config["DETAIL_LIMIT"]
    _detail_limit = None if limit is None else int(limit)
    _slow_ns = int(config["SLOW_MS"] * 1_000_000)
    _ignored_signals = frozenset(_signals_at(_as_list(config["IGNORE_SIGNALS"])))
    _ignored_senders = frozenset(_as_list(config["IGNORE_SENDERS"]))
    _only_signals = frozenset(_signals_at(_as_list(config["TRACE_ONLY_SIGNALS"])))


def install() -> None:
    """Trace every signal send from now on. Safe to call again, before or after django.setup()."""
    conf.reset()
    recorder.start()
    if _originals:
        return
    hygiene.hygiene.ran = _ran
    for owner, name, make in _PATCHES:
        _originals[(owner, name)] = owner.__dict__[name]
        setattr(owner, name, make())


def uninstall() -> None:
    """Put Django's own methods back, exactly as they were."""
    while _originals:
        (owner, name), original = _originals.popitem()
        setattr(owner, name, original)


# --- capture() ------------------------------------------------------------------------------


class CapturedEvents(list[SignalEvent]):
    """The events recorded inside a :func:`capture` block, in the order they finished."""

    def filter(
        self,
        signal: Signal | str | None = None,
        sender: Any = None,
        receiver: str | None = None,
    ) -> list[SignalEvent]:
        """Events of this signal (object or dotted label), sender (object or label) and receiver
        (a substring of a receiver's ``module.qualname``)."""
        return [
            event
            for event in self
            if (signal is None or event.signal is signal or event.signal_label == signal)
            and (sender is None or event.sender is sender or event.sender_label == sender)
            and (receiver is None or any(receiver in call.label for call in event.receivers))
        ]


@contextmanager
def capture(limit_detail: bool = False) -> Iterator[CapturedEvents]:
    """Record the signal events sent inside the block (installing tracing for it if needed)::

    with capture() as events:
        Pizza.objects.create(name="margherita")
    [event] = events.filter(signal=post_save, sender=Pizza)
    assert event.ok

    Every send is recorded in full, whatever DETAIL_LIMIT says; with ``limit_detail``, as in
    production: sends past the limit are folded, and only their outliers are events.
    """
    global _full_detail
    was_installed = is_installed()
    install()
    events = CapturedEvents()
    full = not limit_detail
    _full_detail += full
    try:
        with recorder.subscribed(events.append, immediate=True):
            yield events
    finally:
        _full_detail -= full
        if not was_installed:
            uninstall()
