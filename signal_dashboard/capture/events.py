"""The event records: one per signal send, with its receivers' timings and outcomes.

Everything on an event that the hot path stores is cheap (references to long-lived
objects, integers, the payload summary); labels and dictionaries are made on demand.

The shapes a send passes on (``Call``, ``Row``, ``ReceiverCall``) are named here once; a send
past DETAIL_LIMIT is folded into a tally instead (tally.py).
"""

from __future__ import annotations

import itertools
import operator
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from .. import conf
from .context import HOST, PID, Origin
from .errors import ErrorInfo
from .labels import (
    HANDLES,
    Handle,
    OpaqueSender,
    key_label,
    new_handle,
    receiver_label,
    sender_label,
)
from .payload import Limits, summarize, summarize_kwargs
from .queries import CallQueries, per_call, query_totals

if TYPE_CHECKING:
    from django.dispatch import Signal

# Wall-clock time of an event is derived from its perf_counter_ns() start, so the hot
# path reads one clock only.
WALL_OFFSET_NS = time.time_ns() - time.perf_counter_ns()

next_event_id = itertools.count(1).__next__


@dataclass
class Bounds:
    """How much of a payload, result or traceback an event keeps."""

    limits: Limits = field(default_factory=Limits)
    max_traceback: int = 8000


# The settings' bounds, read by every send with kwargs to summarize.
bounds = Bounds()


@conf.on_change
def _read_settings(config: dict[str, Any]) -> None:
    global bounds
    bounds = Bounds(Limits.from_config(config), int(config["MAX_TRACEBACK_LENGTH"]))


def summarize_result(value: Any) -> Any:
    """A receiver's return value, bounded like the payload."""
    return summarize(value, bounds.limits)


def error_info(exc: BaseException) -> ErrorInfo:
    """A receiver's exception, as text, caught in the frame that called the receiver: its
    traceback starts at the receiver's frame."""
    return ErrorInfo.from_exception(exc, bounds.max_traceback, skip_frames=1)


# Senders kept as they are; classes are kept as handles, other senders are labelled at send
# time, so that an event keeps no sender alive.
PLAIN_SENDERS = frozenset({type(None), str, int})
_IMMUTABLE = frozenset({type(None), bool, int, float, str})


# A receiver's call, as a send records it on the sending thread: a plain tuple, as a NamedTuple
# costs some 1,900 more instructions per receiver call (bench/instructions.py). Its fields are
# read by these indexes (``ReceiverCall`` is the readable form):
# (receiver key, see labels.receiver_key(); is_async; start_ns; duration_ns; the result's
# summary, None past DETAIL_LIMIT; ErrorInfo or None).
Call = tuple[Any, bool, int, int, Any, ErrorInfo | None]
CALL_KEY, CALL_IS_ASYNC, CALL_START, CALL_DURATION, CALL_RESULT, CALL_ERROR = range(6)
call_start = operator.itemgetter(CALL_START)
call_duration = operator.itemgetter(CALL_DURATION)


class Row(TypedDict):
    """An event as the stream shows it (``SignalEvent.as_row()``), as sockets, Redis and
    ``signals_tail`` pass it on. Rows read back from Redis's history carry ``history_id``."""

    id: str
    timestamp: float
    signal: str
    sender: str
    method: str
    duration_ns: int
    origin: dict[str, Any]
    depth: int
    parent_id: str | None
    payload_after_send: bool
    receiver_count: int
    receivers: list[str]
    slowest_receiver: str | None
    slowest_receiver_ns: int
    ok: bool
    error: str | None
    queries: NotRequired[int]  # its receivers' queries, with those of the sends they made
    history_id: NotRequired[str]


@dataclass(frozen=True)
class ReceiverCall:
    """One receiver's part in a send."""

    label: str
    location: str
    is_async: bool
    start_ns: int
    duration_ns: int
    result: Any
    error: ErrorInfo | None
    queries: CallQueries = field(default_factory=CallQueries)

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        error = self.error
        return {
            "receiver": self.label,
            "location": self.location,
            "is_async": self.is_async,
            "duration_ns": self.duration_ns,
            "queries": self.queries.as_dict(),
            "result": self.result,
            "error": None
            if error is None
            else {"type": error.type, "message": error.message, "traceback": error.traceback},
        }


class Named:
    """What holds a signal's and a sender's keys (an event, a tally) names them so."""

    __slots__ = ()
    signal_key: Handle
    sender_key: Any

    @property
    def signal_label(self) -> str:
        return self.signal_key.label

    @property
    def sender_label(self) -> str:
        return key_label(self.sender_key)


class SignalEvent(Named):
    """One ``Signal.send`` (or ``send_robust``, ``asend``, ``asend_robust``)."""

    __slots__ = (
        "_kwargs",
        "_payload",
        "calls",
        "duration_ns",
        "id",
        "method",
        "nested_queries",
        "origin",
        "parent",
        "payload_after_send",
        "queries",
        "sender_key",
        "signal_key",
        "start_ns",
    )

    # Its receivers' results are summarized (a LightSend's are not).
    detailed = True

    def __init__(
        self,
        signal: Signal,
        sender: Any,
        method: str,
        named: dict[str, Any],
        parent: SignalEvent | None,
        origin: Origin,
        start_ns: int,
    ) -> None:
        self.id = next_event_id()
        # True for an outlier of a folded pair, whose kwargs were read after its receivers ran.
        self.payload_after_send = False
        # handle_of(), inlined: this runs for every send.
        handle = HANDLES.get(id(signal))
        if handle is None or handle() is not signal:
            handle = new_handle(signal, None)
        self.signal_key = handle
        if isinstance(sender, type):  # classes mostly: held weakly, like the signal
            handle = HANDLES.get(id(sender))
            if handle is None or handle() is not sender:
                handle = new_handle(sender, sender_label(sender))
            self.sender_key = handle
        elif type(sender) in PLAIN_SENDERS:
            self.sender_key = sender
        else:
            self.sender_key = OpaqueSender(sender_label(sender))
        self.method = method
        # Kwargs that are all immutable plain values are summarized when first read; anything
        # else is summarized now, before receivers or later code can change it.
        for value in named.values():
            if type(value) not in _IMMUTABLE:
                self._kwargs: dict[str, Any] | None = None
                self._payload: dict[str, Any] | None = summarize_kwargs(
                    signal, named, bounds.limits
                )
                break
        else:
            self._kwargs = named
            self._payload = None
        self.parent = parent
        self.origin = origin
        self.start_ns = start_ns
        self.duration_ns = 0
        self.calls: list[Call] = []
        # The queries its receivers ran, and those of the sends they made (see queries.py).
        self.queries: list[Any] | None = None
        self.nested_queries: list[Any] | None = None

    @property
    def payload(self) -> dict[str, Any]:
        """The send's kwargs: bounded, redacted, never the objects themselves."""
        if self._payload is None:
            self._payload = summarize_kwargs(self.signal_key(), self._kwargs or {}, bounds.limits)
            self._kwargs = None
        return self._payload

    @property
    def depth(self) -> int:
        """0 for a send made outside any receiver, 1 for one made by a receiver, and so on."""
        return depth_of(self.parent)

    @property
    def uid(self) -> str:
        """Identifier unique across processes and hosts."""
        return f"{HOST}:{PID}:{self.id}"

    @property
    def timestamp(self) -> float:
        """Wall-clock start of the send, in seconds since the epoch."""
        return (self.start_ns + WALL_OFFSET_NS) / 1e9

    @property
    def signal(self) -> Signal | None:
        """The signal sent, or None if it was garbage-collected since."""
        return self.signal_key()

    @property
    def sender(self) -> Any:
        """The sender: a class (None if it was garbage-collected since), None, a string or an
        int; any other object is not kept and stands as its label (``.label``)."""
        key = self.sender_key
        return key() if type(key) is Handle else key

    @property
    def receivers(self) -> list[ReceiverCall]:
        # Sorted by start: concurrent async receivers finish in any order.
        calls = sorted(self.calls, key=call_start)
        queries = per_call(calls, self.queries, self.nested_queries)
        return [
            ReceiverCall(*receiver_label(key), is_async, start, duration, result, error, made)
            for (key, is_async, start, duration, result, error), made in zip(
                calls, queries, strict=True
            )
        ]

    @property
    def slowest_receiver(self) -> ReceiverCall | None:
        return max(self.receivers, key=lambda call: call.duration_ns, default=None)

    @property
    def ok(self) -> bool:
        """True when no receiver raised."""
        return all(call[CALL_ERROR] is None for call in self.calls)

    @property
    def errors(self) -> list[ErrorInfo]:
        return [call[CALL_ERROR] for call in self.calls if call[CALL_ERROR] is not None]

    @property
    def receiver_ns(self) -> int:
        """Time spent in receivers (overlapping async receivers count once each)."""
        return sum(map(call_duration, self.calls))

    @property
    def queries_total(self) -> dict[str, int]:
        """The queries its receivers ran, with those of the sends they made, and their time."""
        count, spent = query_totals(self)
        return {"count": count, "duration_ns": spent}

    def _common_fields(self) -> dict[str, Any]:
        """The fields both the full and the row form of an event carry."""
        parent = self.parent
        return {
            "id": self.uid,
            "timestamp": self.timestamp,
            "signal": self.signal_label,
            "sender": self.sender_label,
            "method": self.method,
            "duration_ns": self.duration_ns,
            "origin": self.origin.as_dict(),
            "depth": self.depth,
            "parent_id": None if parent is None else parent.uid,
            "payload_after_send": self.payload_after_send,
        }

    def as_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data; field names are part of the public API."""
        return self._as_dict(self._common_fields())

    def as_row(self) -> Row:
        """The compact form streamed to dashboards: what a row shows and filters need."""
        return self._as_row(self._common_fields())

    def as_row_and_dict(self) -> tuple[Row, dict[str, Any]]:
        """``(as_row(), as_dict())``, their common fields made once (and shared)."""
        common = self._common_fields()
        return self._as_row(common), self._as_dict(common)

    def _as_dict(self, common: dict[str, Any]) -> dict[str, Any]:
        return {
            **common,
            "ok": self.ok,
            "queries_total": self.queries_total,
            "payload": self.payload,
            # Each call's start from the send's, so that another process can lay them out.
            "receivers": [
                {**call.as_dict(), "start_offset_ns": call.start_ns - self.start_ns}
                for call in self.receivers
            ],
            "pid": PID,
            "host": HOST,
        }

    def _as_row(self, common: dict[str, Any]) -> Row:
        # Made for every event a dashboard or the Redis transport gets: from the call tuples
        # directly, without the ReceiverCall objects of ``receivers``.
        calls = sorted(self.calls, key=call_start) if len(self.calls) > 1 else self.calls
        slowest = max(calls, key=call_duration, default=None)
        errors = self.errors
        return {  # type: ignore[typeddict-item]
            **common,
            "receiver_count": len(calls),
            "receivers": [receiver_label(call[CALL_KEY])[0] for call in calls],
            "slowest_receiver": None if slowest is None else receiver_label(slowest[CALL_KEY])[0],
            "slowest_receiver_ns": 0 if slowest is None else slowest[CALL_DURATION],
            "ok": not errors,
            "error": f"{errors[0].type}: {errors[0].message}" if errors else None,
            "queries": 0
            if self.queries is None and self.nested_queries is None
            else query_totals(self)[0],
        }

    def __repr__(self) -> str:
        return f"<SignalEvent {self.signal_label} sender={self.sender_label} id={self.id}>"


# Deepest nesting counted: a tally's parent is its latest send's, so two tallies whose sends
# nest in each other's can name each other.
MAX_DEPTH = 100


def depth_of(parent: Any) -> int:
    depth = 0
    while parent is not None and depth < MAX_DEPTH:
        depth, parent = depth + 1, parent.parent
    return depth
