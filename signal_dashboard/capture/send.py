"""The send path: the replacements of ``Signal``'s four send methods (patch.py installs them),
which time every receiver of every send.

Longer than most modules, on purpose: the receiver loops cannot be shared between ``send()``
and ``asend()``'s helper without adding a frame between a send and its receivers (see below),
so each lives where Django's own does, beside the code that opens and finishes a traced send
and the settings it reads as module globals. ``send()`` has two: one for a send folded into its
tally (past DETAIL_LIMIT), which must cost as little as it can, and one for everything else (an
event, or no tracing).

Each replacement dispatches exactly as Django's own method does, using
``Signal._live_receivers(sender) -> (sync, async)`` (stable across Django 5.2 and 6.x), and
returns ``(receiver, response)`` pairs holding the receivers themselves. ``has_listeners()``
and the receivers' bookkeeping are left alone. A send that IGNORE_SIGNALS or IGNORE_SENDERS
leaves out runs the same code without an event: dispatched alike, it leaves nothing behind.
What a send records goes to the outbox (outbox.py), which the recorder drains.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator
from time import perf_counter_ns
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.core.signals import request_finished, request_started
from django.dispatch import Signal, dispatcher

from .. import conf
from . import queries, tasks
from .context import PROCESS_ORIGIN, SUSPENDED, Origin, current_event, current_origin, sync_send
from .errors import ErrorInfo
from .events import Call, SignalEvent, call_duration, error_info, summarize_result
from .failures import Failures
from .labels import (
    WRAPPER_CODES,
    Handle,
    callable_key,
    handle_of,
    receiver_key,
    sender_label,
    signal_at,
    wrapped_code,
)
from .origins import finished_origin, started_origin
from .outbox import outbox
from .tally import SLOT_KEY, LightSend, Tally, promoted

logger = logging.getLogger("signal_dashboard")

NO_RECEIVERS = dispatcher.NO_RECEIVERS

# Django 6.0 runs asend()'s sync receivers before its async ones, and async receivers in a
# TaskGroup sharing one context (dispatcher._run_parallel); 5.2 gathers them all at once.
_run_parallel: Callable[..., Coroutine[Any, Any, list[Any]]] | None = getattr(
    dispatcher, "_run_parallel", None
)
_SYNC_BEFORE_ASYNC = _run_parallel is not None

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
_NOT_FOLDING = object()
_FOREVER_NS = 1 << 62
# Whether a send may be folded at once into a tally folding already (see send()): sends are
# folded, and no other setting has a say.
_folding = False


def _update_folding() -> None:
    global _folding
    _folding = bool(
        _detail_limit is not None
        and not _full_detail
        and _recording
        and not _ignored_signals
        and not _only_signals
        and not _ignored_senders
    )


_SECOND_NS = 1_000_000_000


# --- The hot path -------------------------------------------------------------------------
# Everything here runs for every traced send: no I/O, no locks, no repr() of user objects.
# Receivers are named by their code object (see labels.receiver_key()), so an event never
# holds a receiver; the rare results and exceptions are summarized as they happen.


def _finish(event: SignalEvent, end_ns: int | None = None) -> None:
    """Time the send (it ended at ``end_ns`` if known), count it for its request, and hand it
    to the recorder."""
    try:
        event.duration_ns = (end_ns or perf_counter_ns()) - event.start_ns
        if event.queries is not None or event.nested_queries is not None:
            queries.hand_up(event)
        origin = event.origin
        if origin is not PROCESS_ORIGIN:
            # Read by the request's Server-Timing header before the recorder gets to it.
            origin.signal_count += 1
            if event.parent is None:  # nested sends run inside their parent's receivers
                origin.receiver_ns += sum(map(call_duration, event.calls))
        if outbox.immediate:  # first: a drain may take the event as soon as it is recorded
            outbox.notify_immediate(event)
        outbox.put(event)
    except Exception:
        Failures.add()


def _fold(
    tally: Tally,
    calls: list[Call],
    start_ns: int,
    end_ns: int | None,
    parent: Any,
    signal: Signal,
    sender: Any,
    method: str,
    named: dict[str, Any],
) -> None:
    """_finish() for a send past the limit: folded into its tally, unless it turned out an
    outlier (a receiver raised, or took SLOW_MS), which becomes a full event, its kwargs read
    now."""
    try:
        end = end_ns or perf_counter_ns()
        first = not tally.folded
        if not tally.add(calls, start_ns, end, _slow_ns, parent):
            origin = tally.origin
            event = promoted(signal, sender, method, named, parent, origin, start_ns, calls)
            queries.move(tally, event)
            _finish(event, end)
            return
        if first:  # the recorder's drains read it from now on
            outbox.put(tally)
    except Exception:
        Failures.add()


def _unfold(
    tally: Tally,
    timed: list[tuple[list[Any], int, int]],
    parent: Any,
    start_ns: int,
    signal: Signal,
    sender: Any,
    method: str,
    named: dict[str, Any],
) -> SignalEvent:
    """The full event of a send that was being folded and turned out an outlier, with the
    calls timed so far (not counted yet: nothing to take back)."""
    calls: list[Call] = [
        (counts[SLOT_KEY], False, start, duration, None, None) for counts, start, duration in timed
    ]
    try:
        event = promoted(signal, sender, method, named, parent, tally.origin, start_ns, calls)
        queries.move(tally, event)
        return event
    except Exception:
        Failures.add()
        return _Unrecorded()  # type: ignore[return-value]


class _Unrecorded:
    """Stands for an event that could not be made: its calls and queries go nowhere."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.queries: list[Any] | None = None
        self.nested_queries: list[Any] | None = None


def _failed_call(receiver: Any, is_async: bool, start: int, err: BaseException) -> Call:
    end = perf_counter_ns()
    try:
        info = error_info(err)
    except Exception:
        Failures.add()
        info = ErrorInfo(type(err).__qualname__, "", "")
    return (receiver_key(receiver), is_async, start, end - start, None, info)


def _result(response: Any) -> Any:
    try:
        return summarize_result(response)
    except Exception:
        Failures.add()
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
    if event is not None and queries.ASYNC_MARKED:
        # Its queries are told from those of the send's other receivers by its key, in the
        # context of the task of its own that asyncio.gather() gave it (see queries.py).
        queries.async_receiver.set(receiver_key(receiver))
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
) -> SignalEvent | Tally | None:
    """The event of a send with receivers, its tally if it is past the detail limit of its
    signal and sender in its origin (it is folded), or None if it is not traced."""
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
        # A task's own signals (see tasks.py; tasks.boundary_of(), inlined: this runs for
        # every send): never folded, as each names its task.
        entry = tasks.boundaries.get(id(signal)) if tasks.boundaries else None
        if entry is not None and entry[0]() is signal:
            if parent is None:
                origin = entry[1](named, current_origin.get())
            else:  # sent inside a receiver: that send's, but the enqueuer is noted
                origin = parent.origin
                if tasks.is_enqueued(signal):
                    tasks.note_enqueued(named, origin)
            return SignalEvent(signal, sender, method, named, parent, origin, perf_counter_ns())
        if parent is not None:
            origin = parent.origin
        elif signal is request_started or signal is request_finished:
            origin = _request_boundary_origin(signal, named)
            if origin is None:
                return None
        else:
            origin = current_origin.get()
        if _detail_limit is not None and not _full_detail:
            if origin is PROCESS_ORIGIN:
                sent = _process_tallies.this_second()
                until_ns = _process_tallies.since + _SECOND_NS
            else:
                sent, until_ns = origin.sent, _FOREVER_NS
            key = (id(signal), id(sender))
            tally = sent.get(key)
            if tally is None or not tally.names(signal, sender):
                tally = sent[key] = Tally(signal, sender, origin, until_ns)
            tally.sends += 1
            if tally.sends > _detail_limit and tally.foldable:
                tally.folding = True
                return tally
        return SignalEvent(signal, sender, method, named, parent, origin, perf_counter_ns())
    except Exception:
        Failures.add()
        return None


class _ProcessTallies(threading.local):
    """Outside requests and commands, the limit is per second, and each thread counts its own:
    a tally is added to by one thread only."""

    def __init__(self) -> None:
        self.tallies: dict[tuple[int, int], Tally] = {}
        self.since = 0

    def this_second(self) -> dict[tuple[int, int], Tally]:
        now = perf_counter_ns()
        if now - self.since >= _SECOND_NS:
            self.tallies = {}  # the last second's stay with the recorder, which reads them
            self.since = now
        return self.tallies


_process_tallies = _ProcessTallies()


def _ignores_sender(sender: Any) -> bool:
    """Whether IGNORE_SENDERS names the sender: a class by its handle's label, made once per
    class and held weakly, as events name it."""
    if isinstance(sender, type):
        return handle_of(sender).label in _ignored_senders
    return sender_label(sender) in _ignored_senders


def _request_boundary_origin(signal: Signal, named: dict[str, Any]) -> Origin | None:
    """The request a request_started or request_finished send belongs to (None: a request
    that is not traced)."""
    if signal is request_started:
        return started_origin(named, current_origin.get())
    return finished_origin(current_origin.get())


def _record_empty(signal: Signal, sender: Any, named: dict[str, Any], method: str) -> None:
    for watcher in _empty_watchers:
        try:
            watcher(signal)
        except Exception:
            Failures.add()
    if not _record_empty_sends:
        return
    parent = _current_parent()
    event = _new_event(signal, sender, named, method, parent)
    if type(event) is Tally:
        _fold(event, [], perf_counter_ns(), None, parent, signal, sender, method, named)
    elif event is not None:
        _finish(event)


def make_send(method: str, robust: bool) -> Callable[..., Any]:
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
        event: SignalEvent | Tally | LightSend | None = None
        if (
            _folding
            and not async_receivers
            and parent is not SUSPENDED
            and self is not request_started
            and self is not request_finished
        ):
            # A (signal, sender) folding already in this origin: its tally, found at once.
            origin = current_origin.get() if parent is None else parent.origin
            tallies = _process_tallies.tallies if origin is PROCESS_ORIGIN else origin.sent
            tally = tallies.get((id(self), id(sender)))
            key = tally.sender_key if tally is not None and tally.folding else _NOT_FOLDING
            if (
                key is not _NOT_FOLDING
                and tally.signal_key() is self  # type: ignore[union-attr]  # Tally.names()
                and (key() is sender if type(key) is Handle else key == sender)
                and (begin := perf_counter_ns()) < tally.until_ns  # type: ignore[union-attr]
            ):
                # Folded as it ends: its receivers' calls are timed here, each beside the
                # counts it goes to. The loop is the one below (whose frame this is), until a
                # receiver raises or takes SLOW_MS: then the send is kept in full.
                tally.sends += 1  # type: ignore[union-attr]
                slots = tally.receivers  # type: ignore[union-attr]
                slow_ns = _slow_ns
                timed: list[tuple[list[Any], int, int]] = []
                responses = []
                start = end = tally.start_ns = begin  # type: ignore[union-attr]
                if parent is not tally:  # (a send of the same tally, made by a receiver)
                    tally.parent = parent  # type: ignore[union-attr]
                sync_send.event = tally
                try:
                    for receiver in sync_receivers:
                        try:
                            response = receiver(signal=self, sender=sender, **named)
                        except Exception as err:
                            if event is None:
                                event = sync_send.event = _unfold(
                                    tally,
                                    timed,
                                    parent,
                                    begin,
                                    self,
                                    sender,
                                    method,
                                    named,  # type: ignore[arg-type]
                                )
                            event.calls.append(_failed_call(receiver, False, start, err))
                            if not robust:
                                raise
                            self._log_robust_failure(receiver, err)
                            responses.append((receiver, err))
                            start = perf_counter_ns()
                            continue
                        except BaseException as err:
                            if event is None:
                                event = _unfold(
                                    tally,
                                    timed,
                                    parent,
                                    begin,
                                    self,
                                    sender,
                                    method,
                                    named,  # type: ignore[arg-type]
                                )
                            event.calls.append(_failed_call(receiver, False, start, err))
                            raise
                        end = perf_counter_ns()
                        duration = end - start
                        code = getattr(receiver, "__code__", None) or callable_key(receiver)
                        if WRAPPER_CODES and id(code) in WRAPPER_CODES:  # receiver_key()
                            code = wrapped_code(receiver)
                        if event is None and duration < slow_ns:
                            counts = slots.get(id(code)) or tally.slot(code)  # type: ignore[union-attr]
                            timed.append((counts, start, duration))
                        else:
                            if event is None:
                                event = sync_send.event = _unfold(
                                    tally,
                                    timed,
                                    parent,
                                    begin,
                                    self,
                                    sender,
                                    method,
                                    named,  # type: ignore[arg-type]
                                )
                            event.calls.append((code, False, start, duration, None, None))
                        responses.append((receiver, response))
                        start = end
                    end = start
                    return responses
                finally:
                    sync_send.event = outer
                    if event is None:
                        if not tally.folded:  # type: ignore[union-attr]
                            outbox.put(tally)  # read from now on
                        tally.fold(timed, begin, end, parent)  # type: ignore[union-attr]
                    else:
                        _finish(event, end)  # type: ignore[arg-type]
        if event is None:
            event = _new_event(self, sender, named, method, parent)
        responses = []
        end: int | None = None
        calls: list[Call] | None = None  # where this send's receiver calls are recorded
        if event is not None:  # else sends made by the receivers keep this send's parent
            if type(event) is Tally:  # folded: no event, its calls kept here until it ends
                if async_receivers:
                    event = LightSend(event, parent, perf_counter_ns())
                    calls = event.calls
                else:
                    calls = []
                    event.start_ns = perf_counter_ns()
                    if parent is not event:  # (a send of the same tally, made by a receiver)
                        event.parent = parent
            else:
                calls = event.calls
            sync_send.event = event
        # The receivers are called here, in this frame, as Django's send() calls them in its
        # own: the loop is _call_sync()'s, which cannot be called without adding a frame.
        try:
            begin = start = event.start_ns if event is not None else 0
            detailed = type(event) is SignalEvent
            for receiver in sync_receivers:
                try:
                    response = receiver(signal=self, sender=sender, **named)
                except Exception as err:
                    if calls is not None:
                        calls.append(_failed_call(receiver, False, start, err))
                    if not robust:
                        raise
                    self._log_robust_failure(receiver, err)
                    responses.append((receiver, err))
                    start = perf_counter_ns()
                    continue
                except BaseException as err:
                    if calls is not None:
                        calls.append(_failed_call(receiver, False, start, err))
                    raise
                end = perf_counter_ns()
                if calls is not None:
                    code = getattr(receiver, "__code__", None) or callable_key(receiver)
                    if WRAPPER_CODES and id(code) in WRAPPER_CODES:  # receiver_key()
                        code = wrapped_code(receiver)
                    calls.append(
                        (
                            code,
                            False,
                            start,
                            end - start,
                            _result(response) if response is not None and detailed else None,
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
            if type(event) is Tally:
                _fold(event, calls, begin, end, parent, self, sender, method, named)  # type: ignore[arg-type]
            elif type(event) is LightSend:
                tally = event.tally
                queries.move(event, tally)
                _fold(tally, calls, begin, end, parent, self, sender, method, named)  # type: ignore[arg-type]
            elif event is not None:
                _finish(event, end)

    return functools.wraps(original)(send)


def make_asend(method: str, robust: bool) -> Callable[..., Any]:
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
        parent = _current_parent()
        event: SignalEvent | Tally | LightSend | None = _new_event(
            self, sender, named, method, parent
        )
        if type(event) is Tally:  # folded: its calls kept in a light send until it ends
            event = LightSend(event, parent, perf_counter_ns())
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
                queries.move(event, event.tally)
                _fold(
                    event.tally,
                    event.calls,
                    event.start_ns,
                    None,
                    parent,
                    self,
                    sender,
                    method,
                    named,
                )
            elif event is not None:
                _finish(event)  # type: ignore[arg-type]

    return functools.wraps(original)(asend)


# --- Settings and switches ------------------------------------------------------------------


def watch_empty_sends(watcher: Callable[[Signal], None]) -> Callable[[], None]:
    """Call ``watcher(signal)`` on the sending thread for every send that reaches no receiver
    (which is recorded only with RECORD_EMPTY_SENDS); returns the function that stops it."""
    global _empty_watchers
    _empty_watchers = (*_empty_watchers, watcher)

    def unwatch() -> None:
        global _empty_watchers
        _empty_watchers = tuple(w for w in _empty_watchers if w is not watcher)

    return unwatch


def ran_as_traced(signal: Signal, code: Any) -> bool:
    """Whether receiver ``code`` ran for ``signal`` as traced (hygiene's test of a loss). A
    signal whose sends are not traced, or not now, cannot tell: taken as ran."""
    if not _recording or signal in _ignored_signals:
        return True
    if _only_signals and signal not in _only_signals:
        return True
    return outbox.ran(signal, code)


def set_recording(on: bool) -> None:
    """Trace sends (the default), or run them untraced while tracing stays installed: the
    dashboard's "Stop recording", which a backend applies in every process it reaches."""
    global _recording
    _recording = on
    _update_folding()


def is_recording() -> bool:
    return _recording


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
    _update_folding()


def keep_every_send() -> Callable[[], None]:
    """Record every send in full, whatever DETAIL_LIMIT says, until the returned function is
    called (``pytest --signals``, ``capture()``)."""
    global _full_detail
    _full_detail += 1
    _update_folding()
    done = False

    def stop() -> None:
        global _full_detail
        nonlocal done
        if not done:
            done = True
            _full_detail -= 1
            _update_folding()

    return stop
