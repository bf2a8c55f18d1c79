"""A tally: the sends of one signal and sender in one origin, counted against DETAIL_LIMIT, and
those past it folded in place, per receiver, with no object made per send.

Also the light send (a folded send whose receivers run asynchronously) and ``promoted()``, the
full event of a folded send that turned out an outlier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .context import HOST, PID, PROCESS_ORIGIN, Origin
from .events import (
    CALL_DURATION,
    CALL_ERROR,
    CALL_KEY,
    CALL_START,
    PLAIN_SENDERS,
    WALL_OFFSET_NS,
    Call,
    Named,
    SignalEvent,
    depth_of,
    next_event_id,
)
from .histogram import BUCKETS, MAX, SUM, counts_histogram, new_counts
from .labels import (
    Handle,
    handle_of,
    receiver_label,
)
from .queries import hand_up, per_call

if TYPE_CHECKING:
    from django.dispatch import Signal


# A tally's receiver slot: histogram.new_counts(), then the receiver's key, then its
# calls' queries: their own, their time, and with the sends they made, both again, and the
# most one call made so.
SLOT_KEY, SLOT_QUERIES, SLOT_QUERY_NS, SLOT_TOTAL_QUERIES, SLOT_TOTAL_QUERY_NS = range(3, 8)
SLOT_QUERY_MAX = 8
SLOT_STATEMENTS = 9  # sql -> how many times its calls ran it (their own)
# Distinct statements a slot counts (statements with values in their text are all distinct).
STATEMENTS_KEPT = 200


class Tally(Named):
    """A (signal, sender) in one origin: how many times it was sent there (counted against
    DETAIL_LIMIT) and the sends past the limit, folded into it in place: per receiver (by key)
    the counts of its calls, and those of the sends (histogram.new_counts() lists). No
    object is made per folded send.

    Only the sending side adds to a tally; the recorder's drains read it by differences while
    it grows (histogram.growth()), so every folded call reaches the statistics exactly.
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
        self.id = next_event_id()
        # Sends from this time on (perf_counter_ns) are another tally's: the process counts
        # its sends per second; a request, for as long as it runs.
        self.until_ns = until_ns
        self.sends = 0  # sent in its origin (in the process: this second, on this thread)
        self.folded = 0  # of them, folded
        self.folding = False  # past the limit: its sends are folded
        self.signal_key = handle_of(signal)
        # Only sends whose sender is a class or a plain value are folded: any other sender is
        # named by its label, which the tally's key (its id) could not tell apart.
        self.foldable = isinstance(sender, type) or type(sender) in PLAIN_SENDERS
        # Any other sender is not kept at all: it must stay collectable.
        self.sender_key: Any = handle_of(sender) if isinstance(sender, type) else None
        if type(sender) in PLAIN_SENDERS:
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
        # The queries of the folded send running now (see queries.py), counted as it is folded.
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
        into its request's figures. Every folded send of send.py's send() runs this, and no
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
            # histogram.bucket_index(), inlined.
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
        queries.hand_up())."""
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
        return depth_of(self.parent)

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
