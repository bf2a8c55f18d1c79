"""The in-process recorder: recent events and requests, latency statistics, and the hook later
stages attach to.

The sending thread only appends a finished event to the outbox (capture/outbox.py). Everything
else (the recent events, the statistics, the request's receiver counts, the subscribers)
happens in :meth:`Recorder.drain`, which a daemon thread runs every ``DRAIN_INTERVAL`` and every
reader runs before it looks, so readers always see every send that finished before they asked.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import conf
from ..capture import context
from ..capture.events import CALL_KEY, SignalEvent
from ..capture.finding import Finding
from ..capture.histogram import Histogram, growth
from ..capture.hygiene import hygiene
from ..capture.labels import handle_of
from ..capture.outbox import Outbox, outbox
from ..capture.tally import SLOT_KEY, SLOT_QUERY_MAX, SLOT_TOTAL_QUERIES, SLOT_TOTAL_QUERY_NS, Tally
from . import findings
from .stats.store import LatencyStore

if TYPE_CHECKING:
    from ..capture.context import Origin

logger = logging.getLogger("signal_dashboard")

# Findings kept in this process, newest last (the registry lists them).
FINDINGS_KEPT = 500

Subscriber = Callable[["SignalEvent"], None]

# How often the recorder's thread takes over what the sending threads left (seconds). Dashboards
# do not wait for it: their flushes drain first. Each wake-up takes the GIL from the app's
# threads, so it only needs to come often enough to keep ``pending`` short.
DRAIN_INTERVAL = 0.05
# A tally of sends outside requests and commands (a second's, on one thread) is read a last
# time once nothing was folded into it for this long (ns); a request's once it finishes, or
# after STALE_TALLY_NS without a fold if it never does.
IDLE_PROCESS_TALLY_NS = 2_000_000_000
# How often the recorder's thread reads the tallies that grow (seconds): live folds on the
# dashboards move at this pace.
TALLY_READ_INTERVAL = 0.25
STALE_TALLY_NS = 600_000_000_000

# What a drain hands the folded subscribers: a tally, and what was folded into it since the
# last drain: the sends' durations (a histogram: its count is how many) and, per receiver, its
# key and a histogram of the new calls.
FoldedSubscriber = Callable[[Tally, Histogram, list[tuple[Any, Histogram]]], None]


class _Sizes(NamedTuple):
    events: int
    requests: int
    window_seconds: int
    storm_threshold: int
    max_keys: int


@conf.derived
def _sizes(config: dict[str, Any]) -> _Sizes:
    return _Sizes(
        int(config["BUFFER_SIZE"]),
        int(config["REQUEST_BUFFER_SIZE"]),
        int(config["STATS_WINDOW_SECONDS"]),
        int(config["STORM_THRESHOLD"]),
        int(config["STATS_MAX_KEYS"]),
    )


class Recorder:
    """Keeps the last ``size`` events and request summaries, and hands each event to subscribers.

    Without sizes given, it follows the settings (``BUFFER_SIZE``, ``REQUEST_BUFFER_SIZE`` and
    the statistics'), taking them again at a drain after they change.

    ``deque.append`` is atomic under the GIL, so the sending threads take no lock; one lock
    keeps two drains (the recorder's thread and a reader) from interleaving.
    Subscribers run inside a drain, off the sending thread; they must only hand the event on.
    """

    def __init__(
        self,
        size: int | None = None,
        request_size: int | None = None,
        source: Outbox | None = None,
    ) -> None:
        follows = size is None and request_size is None
        defaults = conf.DEFAULTS
        self._events: deque[SignalEvent] = deque(maxlen=size or defaults["BUFFER_SIZE"])
        self._requests: deque[Origin] = deque(
            maxlen=request_size or defaults["REQUEST_BUFFER_SIZE"]
        )
        self.requests_added = 0  # finished requests, commands and task runs, ever
        # The settings last taken (see _follow_settings()); False: sizes of its own.
        self._sizes: _Sizes | bool | None = None if follows else False
        self._latency = LatencyStore()
        # Tallies with folded sends: read at every drain while they grow, then kept (as many
        # as events) for ``folds``.
        self._tallies: dict[int, Tally] = {}
        self._tallies_read_at = 0.0  # time.monotonic()
        self._folds: deque[Tally] = deque(maxlen=size or defaults["BUFFER_SIZE"])
        self._findings: deque[Finding] = deque(maxlen=FINDINGS_KEPT)
        # What the sending threads left (the process's outbox, for the process's recorder).
        self.outbox = Outbox() if source is None else source
        self.pending = self.outbox.pending
        self.subscribers: tuple[Subscriber, ...] = ()
        # Called in a drain with what was folded by DETAIL_LIMIT since the last one.
        self.folded: tuple[FoldedSubscriber, ...] = ()
        self.subscriber_failures = 0
        self._lock = threading.RLock()
        self._draining = False
        self._thread: threading.Thread | None = None

    # -- what the sending threads left ---------------------------------------------------------

    def record(self, item: SignalEvent | Origin) -> None:
        """Take a finished send (or request, command or task run), as a sending thread does:
        it is accounted at the next drain."""
        self.outbox.put(item)

    @property
    def lost(self) -> int:
        """Events and requests that found the outbox full."""
        return self.outbox.lost

    # -- off it --------------------------------------------------------------------------------

    def drain(self, wait: bool = True, periodic: bool = False) -> None:
        """Account everything pending: events, statistics, requests, subscribers, and what was
        folded into tallies.

        Without ``wait``, return at once if another thread is draining (its events reach the
        subscribers when it is done). ``periodic`` (the recorder's thread) reads the growing
        tallies only every TALLY_READ_INTERVAL: each read compares every bucket, and a reader
        that asks gets them read at once.
        """
        # Always through the lock: another thread's drain may hold events it took from
        # ``pending`` and has not accounted yet.
        if not self._lock.acquire(blocking=wait):
            return
        try:
            self._follow_settings()
            # (_draining: a subscriber reading us; tallies grow without anything pending)
            if self._draining or not (self.pending or self._tallies):
                return
            self._draining = True
            try:
                with context.suspended():
                    self._drain(periodic)
            finally:
                self._draining = False
        finally:
            self._lock.release()

    def _drain(self, periodic: bool) -> None:
        pending = self.pending
        events = self._events
        latency = self._latency
        subscribers = self.subscribers
        process = context.PROCESS_ORIGIN
        batch: list[SignalEvent] = []
        # Only what is pending now: busy senders must not keep one drain going forever.
        for _ in range(len(pending)):
            item = pending.popleft()
            if type(item) is context.Origin:
                # The request's sends are in the statistics before its storms are counted.
                latency.record_many(batch)
                batch = []
                self._read_tallies(item)
                item.storms = latency.record_origin(item)
                findings.count_tallies(tally for tally in item.sent.values() if tally.folded)
                findings.judge(item)
                hygiene.connects_left(item)
                self._requests.append(item)
                self.requests_added += 1
                continue
            if type(item) is Tally:  # its first fold: read from now on
                self._tallies[id(item)] = item  # type: ignore[assignment]
                continue
            if type(item) is Finding:
                self._findings.append(item)
                for subscriber in subscribers:  # rows of their own, for dashboards and Redis
                    self._call(subscriber, item)  # type: ignore[arg-type]
                continue
            event: SignalEvent = item  # type: ignore[assignment]
            batch.append(event)
            events.append(event)
            if event.origin is not process:
                event.origin.count_calls(event)
            if event.queries is not None:
                findings.count_event(event)
            for subscriber in subscribers:
                self._call(subscriber, event)
        if batch:
            latency.record_many(batch)
        now = time.monotonic()
        if self._tallies and (not periodic or now >= self._tallies_read_at + TALLY_READ_INTERVAL):
            self._tallies_read_at = now
            self._read_tallies()

    def _read_tallies(self, finished: Origin | None = None) -> None:
        """Account what was folded since the last drain: into every tally (a last time into
        those of the ``finished`` request or command, and those idle long enough)."""
        now = time.perf_counter_ns()
        for ident, tally in list(self._tallies.items()):
            if finished is not None and tally.origin is not finished:
                continue
            self._read(tally)
            idle = now - tally.last_ns
            if (
                tally.origin is finished
                or idle > STALE_TALLY_NS
                or (tally.origin is context.PROCESS_ORIGIN and idle > IDLE_PROCESS_TALLY_NS)
            ):
                del self._tallies[ident]
                self._folds.append(tally)

    def _read(self, tally: Tally) -> None:
        seen = tally.seen
        if seen is None:
            # folded, the sends' histogram, per receiver, and per receiver its queries
            seen = tally.seen = [0, None, {}, {}]
        folded = tally.folded
        if folded == seen[0]:
            return
        seen[0] = folded
        sends, seen[1] = growth(tally.sends_counts, seen[1])
        receivers = []
        queries = {}
        for ident, slot in list(tally.receivers.items()):
            added, seen[2][ident] = growth(slot, seen[2].get(ident))
            if added.count:
                receivers.append((slot[SLOT_KEY], added))
            made = slot[SLOT_TOTAL_QUERIES]
            if made:
                before = seen[3].get(ident, (0, 0))
                queries[id(slot[SLOT_KEY])] = [
                    made - before[0],
                    slot[SLOT_QUERY_MAX],
                    slot[SLOT_TOTAL_QUERY_NS] - before[1],
                ]
                seen[3][ident] = (made, slot[SLOT_TOTAL_QUERY_NS])
        if queries:
            findings.check_tally(tally)
        self._latency.record_fold(tally.signal_key, tally.sender_key, sends, receivers, queries)
        origin = tally.origin
        if origin is not context.PROCESS_ORIGIN:
            top_level = tally.parent is None
            for key, added in receivers:
                origin.count_folded(key, added.count, added.max_ns, top_level)
        for subscriber in self.folded:
            try:
                subscriber(tally, sends, receivers)
            except Exception:
                self.subscriber_failures += 1
                if self.subscriber_failures == 1:
                    logger.exception("signal_dashboard subscriber %r failed", subscriber)

    def _call(self, subscriber: Subscriber, event: SignalEvent) -> None:
        try:
            subscriber(event)
        except Exception:
            self.subscriber_failures += 1
            if self.subscriber_failures == 1:
                logger.exception("signal_dashboard subscriber %r failed", subscriber)

    def ran(self, signal: Any, code: Any) -> bool:
        """Whether a call of receiver ``code`` for ``signal`` was recorded: in the statistics,
        a tally or still pending. Never drains: the garbage collector may ask in the middle of
        one."""
        handle = handle_of(signal)
        for signal_key, _, receiver_key in list(self._latency.calls):
            if signal_key is handle and receiver_key is code:
                return True
        for item in [*self._tallies.values(), *list(self.pending)]:
            if type(item) is Tally:
                if item.signal_key is handle and id(code) in item.receivers:
                    return True
            elif type(item) is SignalEvent:
                sent = item.signal_key is handle
                if sent and any(call[CALL_KEY] is code for call in item.calls):
                    return True
        return False

    @property
    def events(self) -> deque[SignalEvent]:
        """The most recent events, oldest first."""
        self.drain()
        return self._events

    @property
    def folds(self) -> list[Tally]:
        """The tallies with sends folded by DETAIL_LIMIT, those done first; as many are kept as
        events."""
        self.drain()
        with self._lock:
            return [*self._folds, *self._tallies.values()]

    @property
    def findings(self) -> deque[Finding]:
        """The most recent signal-hygiene findings (see hygiene.py), oldest first."""
        self.drain()
        return self._findings

    @property
    def requests(self) -> deque[Origin]:
        """The most recent finished requests and commands, oldest first."""
        self.drain()
        return self._requests

    @property
    def latency(self) -> LatencyStore:
        """This process's latency statistics."""
        self.drain()
        return self._latency

    def start(self) -> None:
        """Run the draining thread (again, in a forked child); idempotent."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(
                target=self._run, name="signal_dashboard.recorder", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        context.current_event.set(context.SUSPENDED)  # this thread's own sends are not traced
        while True:
            time.sleep(DRAIN_INTERVAL)
            self.drain_quietly(periodic=True)

    def drain_quietly(self, wait: bool = True, periodic: bool = False) -> None:
        """drain(), off the sending threads: a failure is logged, not raised."""
        try:
            self.drain(wait, periodic)
        except Exception:
            logger.exception("signal_dashboard could not account recorded events")

    def _after_fork(self) -> None:
        # The child has no recorder thread, and the lock may have been held at the fork.
        running = self._thread is not None
        self._lock = threading.RLock()
        self._draining = False
        self._thread = None
        if running:
            self.start()

    # -- subscribers ---------------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber, immediate: bool = False) -> Callable[[], None]:
        """Call ``subscriber(event)`` for every event recorded from now on, in a drain (or with
        ``immediate``, on the sending thread as the send finishes); returns the unsubscribe
        function."""
        # Replacing tuples (rather than mutating lists) lets senders and drains iterate
        # without a lock.
        if immediate:
            self.outbox.immediate = (*self.outbox.immediate, subscriber)
        else:
            self.drain()  # what was sent before subscribing is not the subscriber's
            self.subscribers = (*self.subscribers, subscriber)

        def unsubscribe() -> None:
            if immediate:
                self.outbox.immediate = tuple(
                    s for s in self.outbox.immediate if s is not subscriber
                )
                return
            self.drain()  # what was sent before unsubscribing still is
            self.subscribers = tuple(s for s in self.subscribers if s is not subscriber)

        return unsubscribe

    def subscribe_folded(self, subscriber: FoldedSubscriber) -> Callable[[], None]:
        """Call ``subscriber(tally, sends, receivers)`` in a drain with what was folded since the
        last one (see FoldedSubscriber); returns the unsubscribe function."""
        self.drain()
        self.folded = (*self.folded, subscriber)

        def unsubscribe() -> None:
            self.drain()
            self.folded = tuple(s for s in self.folded if s is not subscriber)

        return unsubscribe

    @contextmanager
    def subscribed(self, subscriber: Subscriber, immediate: bool = False) -> Iterator[None]:
        unsubscribe = self.subscribe(subscriber, immediate)
        try:
            yield
        finally:
            unsubscribe()

    # -- settings --------------------------------------------------------------------------------

    def _follow_settings(self) -> None:
        """Take the buffer sizes and the statistics' settings, when they have changed."""
        if self._sizes is False:
            return
        sizes = _sizes()
        if sizes is self._sizes:
            return
        self._sizes = sizes
        if sizes.events != self._events.maxlen:
            self._events = deque(self._events, maxlen=sizes.events)
            self._folds = deque(self._folds, maxlen=sizes.events)
        if sizes.requests != self._requests.maxlen:
            self._requests = deque(self._requests, maxlen=sizes.requests)
        if sizes.window_seconds != self._latency.window_seconds:
            # Slices of another length cannot be compared: start the statistics afresh.
            self._latency = LatencyStore(window_seconds=sizes.window_seconds)
        self._latency.storm_threshold = sizes.storm_threshold
        self._latency.max_keys = sizes.max_keys

    def clear(self) -> None:
        with self._lock:
            self.drain()
            self._events.clear()
            self._folds.clear()
            self._tallies.clear()
            self._findings.clear()
            self._requests.clear()
            self._latency.clear()


recorder = Recorder(source=outbox)
outbox.ran = recorder.ran  # hygiene's test of a loss
os.register_at_fork(after_in_child=recorder._after_fork)
