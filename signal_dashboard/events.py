"""The event records: one per signal send, with its receivers' timings and outcomes.

Everything on an event that the hot path stores is cheap (references to long-lived
objects, integers, the payload summary); labels and dictionaries are made on demand.

Over 400 lines on purpose: the full event, the light (folded) send, the fold and the shapes
they pass on (``Call``, ``Row``, ``ReceiverCall``) change together, as the send path does.
"""

from __future__ import annotations

import itertools
import operator
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from . import conf
from .context import HOST, PID, PROCESS_ORIGIN, Origin
from .database import CallQueries, hand_up, per_call, query_totals
from .errors import ErrorInfo
from .labels import (
    HANDLES,
    Handle,
    OpaqueSender,
    handle_of,
    key_label,
    new_handle,
    receiver_label,
    sender_label,
)
from .payload import Limits, summarize, summarize_kwargs
from .stats.histogram import BUCKETS, MAX, SUM, counts_histogram, new_counts

if TYPE_CHECKING:
    from django.dispatch import Signal

# Wall-clock time of an event is derived from its perf_counter_ns() start, so the hot
# path reads one clock only.
WALL_OFFSET_NS = time.time_ns() - time.perf_counter_ns()

_next_id = itertools.count(1).__next__


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
_PLAIN_SENDERS = frozenset({type(None), str, int})
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


class _Named:
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


class SignalEvent(_Named):
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
        self.id = _next_id()
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
        elif type(sender) in _PLAIN_SENDERS:
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
        # The queries its receivers ran, and those of the sends they made (see database.py).
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
        return _depth(self.parent)

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


# A tally's receiver slot: stats.histogram.new_counts(), then the receiver's key, then its
# calls' queries: their own, their time, and with the sends they made, both again, and the
# most one call made so.
SLOT_KEY, SLOT_QUERIES, SLOT_QUERY_NS, SLOT_TOTAL_QUERIES, SLOT_TOTAL_QUERY_NS = range(3, 8)
SLOT_QUERY_MAX = 8
SLOT_STATEMENTS = 9  # sql -> how many times its calls ran it (their own)
# Distinct statements a slot counts (statements with values in their text are all distinct).
STATEMENTS_KEPT = 200


def _depth(parent: Any) -> int:
    depth = 0
    while parent is not None and depth < MAX_DEPTH:
        depth, parent = depth + 1, parent.parent
    return depth


class Tally(_Named):
    """A (signal, sender) in one origin: how many times it was sent there (counted against
    DETAIL_LIMIT) and the sends past the limit, folded into it in place: per receiver (by key)
    the counts of its calls, and those of the sends (stats.histogram.new_counts() lists). No
    object is made per folded send.

    Only the sending side adds to a tally; the recorder's drains read it by differences while
    it grows (stats.histogram.growth()), so every folded call reaches the statistics exactly.
    """

    __slots__ = (
        "first_ns",
        "foldable",
        "folded",
        "folding",
        "id",
        "last_ns",
        "nested_queries",
        "origin",
        "parent",
        "queries",
        "receivers",
        "seen",
        "sender_key",
        "sends",
        "sends_counts",
        "signal_key",
        "start_ns",
        "until_ns",
    )

    def __init__(self, signal: Signal, sender: Any, origin: Origin, until_ns: int) -> None:
        self.id = _next_id()
        # Sends from this time on (perf_counter_ns) are another tally's: the process counts
        # its sends per second; a request, for as long as it runs.
        self.until_ns = until_ns
        self.sends = 0  # sent in its origin (in the process: this second, on this thread)
        self.folded = 0  # of them, folded
        self.folding = False  # past the limit: its sends are folded
        self.signal_key = handle_of(signal)
        # Only sends whose sender is a class or a plain value are folded: any other sender is
        # named by its label, which the tally's key (its id) could not tell apart.
        self.foldable = isinstance(sender, type) or type(sender) in _PLAIN_SENDERS
        # Any other sender is not kept at all: it must stay collectable.
        self.sender_key: Any = handle_of(sender) if isinstance(sender, type) else None
        if type(sender) in _PLAIN_SENDERS:
            self.sender_key = sender
        self.origin = origin
        # id(receiver key) -> its calls' counts, the key last (held, so the id stays its own).
        self.receivers: dict[int, list[Any]] = {}
        self.sends_counts = new_counts()
        self.first_ns = self.last_ns = 0
        # While one of its folded sends runs its receivers, the parent of the sends they make
        # (as an event is): the send's start and its own parent.
        self.start_ns = 0
        self.parent: Any = None
        self.seen: Any = None  # what the drains read last (see recorder.Recorder)
        # The queries of the folded send running now (see database.py), counted as it is folded.
        self.queries: list[Any] | None = None
        self.nested_queries: list[Any] | None = None

    def names(self, signal: Signal, sender: Any) -> bool:
        """Whether this tally is of these objects (and not of others once at the same ids)."""
        if not self.foldable:
            return True  # only counted, never folded
        key = self.sender_key
        return self.signal_key() is signal and (
            key() is sender if type(key) is Handle else key == sender
        )

    def slot(self, key: Any) -> list[Any]:
        """The counts of a receiver's calls (made on its first fold)."""
        slot = self.receivers.get(id(key))
        if slot is None:
            slot = self.receivers[id(key)] = [*new_counts(), key, 0, 0, 0, 0, 0, {}]
        return slot

    def add(self, calls: list[Call], start_ns: int, end_ns: int, slow_ns: int, parent: Any) -> bool:
        """Fold a send past the limit whose calls were recorded as an event's are (a send with
        async receivers); False, and nothing counted, if it is an outlier: a call raised or
        took ``slow_ns``."""
        timed = []
        for call in calls:
            duration = call[CALL_DURATION]
            if duration >= slow_ns or call[CALL_ERROR] is not None:
                return False
            timed.append((self.slot(call[CALL_KEY]), call[CALL_START], duration))
        self.fold(timed, start_ns, end_ns, parent)
        return True

    def fold(
        self, timed: list[tuple[list[Any], int, int]], start_ns: int, end_ns: int, parent: Any
    ) -> None:
        """Fold a send past the limit (on the sending side): each of its receivers' calls
        (its counts, start and duration) and the send itself into their counts, and the send
        into its request's figures. Every folded send of tracing's send() runs this, and no
        other call."""
        if not self.folded:
            self.first_ns = start_ns
        self.folded += 1
        self.last_ns = start_ns
        if self.queries is not None or self.nested_queries is not None:
            self._fold_queries(timed, parent)
        timed.append((self.sends_counts, start_ns, end_ns - start_ns))
        spent = -timed[-1][2]
        for counts, _, value in timed:
            spent += value
            counts[SUM] += value
            if value > counts[MAX]:
                counts[MAX] = value
            # stats.histogram.bucket_index(), inlined.
            if value < 128:
                bucket = value if value > 0 else 0
            else:
                shift = value.bit_length() - 7
                bucket = (shift << 6) + (value >> shift)
            buckets = counts[BUCKETS]
            buckets[bucket] = buckets.get(bucket, 0) + 1
        origin = self.origin
        if origin is not PROCESS_ORIGIN:
            # Read by the request's Server-Timing header before the recorder gets to it.
            origin.signal_count += 1
            if parent is None:  # nested sends run inside their parent's receivers
                origin.receiver_ns += spent

    def _fold_queries(self, timed: list[tuple[list[Any], int, int]], parent: Any) -> None:
        """Count the queries of the send being folded into its receivers' slots: each call's
        own, and in its total those of the sends it made; then hand them up (see
        database.hand_up())."""
        calls = [(counts[SLOT_KEY], False, start, duration) for counts, start, duration in timed]
        for (counts, _, _), made in zip(
            timed, per_call(calls, self.queries, self.nested_queries), strict=True
        ):
            counts[SLOT_QUERIES] += made.count
            counts[SLOT_QUERY_NS] += made.duration_ns
            counts[SLOT_TOTAL_QUERIES] += made.total_count
            counts[SLOT_TOTAL_QUERY_NS] += made.total_ns
            if made.total_count > counts[SLOT_QUERY_MAX]:
                counts[SLOT_QUERY_MAX] = made.total_count
            if made.count:
                statements = counts[SLOT_STATEMENTS]
                for sql, times in made.by_statement().items():
                    if sql in statements or len(statements) < STATEMENTS_KEPT:
                        statements[sql] = statements.get(sql, 0) + times
        if parent is not self:
            hand_up(self, parent)
        self.queries = self.nested_queries = None

    @property
    def uid(self) -> str:
        """Identifier unique across processes and hosts (a fold's, as an event's)."""
        return f"{HOST}:{PID}:{self.id}"

    @property
    def depth(self) -> int:
        return _depth(self.parent)

    @property
    def timestamp(self) -> float:
        """Wall-clock start of its first folded send, in seconds since the epoch."""
        return (self.first_ns + WALL_OFFSET_NS) / 1e9

    def receiver_summaries(self) -> list[dict[str, Any]]:
        """Per receiver, in the order first folded: its label and location, calls, their total
        and longest time, p50 and p95 (read while the tally may grow: a moment's counts)."""
        summaries = []
        for slot in list(self.receivers.values()):
            histogram = counts_histogram(dict(slot[BUCKETS]), slot[SUM], slot[MAX])
            label, location = receiver_label(slot[SLOT_KEY])
            summaries.append(
                {
                    "receiver": label,
                    "location": location,
                    "count": histogram.count,
                    "total_ns": histogram.sum_ns,
                    "max_ns": histogram.max_ns,
                    "p50_ns": histogram.percentile(50),
                    "p95_ns": histogram.percentile(95),
                    "queries": slot[SLOT_QUERIES],
                    "query_ns": slot[SLOT_QUERY_NS],
                    "total_queries": slot[SLOT_TOTAL_QUERIES],
                    "total_query_ns": slot[SLOT_TOTAL_QUERY_NS],
                }
            )
        return summaries

    def as_dict(self) -> dict[str, Any]:
        """The fold as JSON-ready data (``events.ndjson``'s record of ``type`` "fold")."""
        sends = self.sends_counts
        return {
            "id": self.uid,
            "type": "fold",
            "timestamp": self.timestamp,
            "last_timestamp": (self.last_ns + WALL_OFFSET_NS) / 1e9,
            "signal": self.signal_label,
            "sender": self.sender_label,
            "origin": self.origin.as_dict(),
            "count": self.folded,
            "total_ns": sends[SUM],
            "max_ns": sends[MAX],
            "receivers": self.receiver_summaries(),
            "pid": PID,
            "host": HOST,
        }

    def __repr__(self) -> str:
        return f"<Tally {self.signal_label} sender={self.sender_label} folded={self.folded}>"


class LightSend:
    """A send past the limit whose receivers run asynchronously: they record their calls here,
    as an event's do, and the send is folded into its tally as it finishes. It holds no signal,
    sender or kwargs: an outlier is made a full event by the send itself, which still has them
    (see :func:`promoted`)."""

    __slots__ = (
        "calls",
        "duration_ns",
        "nested_queries",
        "origin",
        "parent",
        "queries",
        "start_ns",
        "tally",
    )

    detailed = False

    def __init__(
        self, tally: Tally, parent: SignalEvent | Tally | LightSend | None, start_ns: int
    ) -> None:
        self.tally = tally
        self.parent = parent
        self.origin = tally.origin
        self.start_ns = start_ns
        self.calls: list[Call] = []
        self.queries: list[Any] | None = None
        self.nested_queries: list[Any] | None = None

    @property
    def uid(self) -> str:
        return self.tally.uid


def promoted(
    signal: Signal,
    sender: Any,
    method: str,
    named: dict[str, Any],
    parent: Any,
    origin: Origin,
    start_ns: int,
    calls: list[Call],
) -> SignalEvent:
    """The full event of a send past the limit that turned out an outlier (a receiver raised,
    or took SLOW_MS): its kwargs read after its receivers ran."""
    event = SignalEvent(signal, sender, method, named, parent, origin, start_ns)
    event.payload_after_send = True
    event.calls = calls
    return event
