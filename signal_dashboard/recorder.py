"""The in-process recorder: recent events and requests, latency statistics, and the hook later
stages attach to.

The sending thread only appends a finished event to ``pending``. Everything else (the recent
events, the statistics, the request's receiver counts, the subscribers) happens in
:meth:`Recorder.drain`, which a daemon thread runs every ``DRAIN_INTERVAL`` and every reader
runs before it looks, so readers always see every send that finished before they asked.
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

from . import conf, context
from .events import CALL_KEY, Fold, LightSend, SignalEvent
from .hygiene import FINDINGS_KEPT, Finding
from .labels import handle_of
from .stats.store import LatencyStore

if TYPE_CHECKING:
    from .context import Origin

logger = logging.getLogger("signal_dashboard")

Subscriber = Callable[["SignalEvent"], None]

# How often the recorder's thread takes over what the sending threads left (seconds). Dashboards
# do not wait for it: their flushes drain first. Each wake-up takes the GIL from the app's
# threads, so it only needs to come often enough to keep ``pending`` short.
DRAIN_INTERVAL = 0.05
# Events and finished requests waiting for that thread; past this, new ones are lost and counted.
PENDING_LIMIT = 20_000


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

    def __init__(self, size: int | None = None, request_size: int | None = None) -> None:
        follows = size is None and request_size is None
        defaults = conf.DEFAULTS
        self._events: deque[SignalEvent] = deque(maxlen=size or defaults["BUFFER_SIZE"])
        self._requests: deque[Origin] = deque(
            maxlen=request_size or defaults["REQUEST_BUFFER_SIZE"]
        )
        # The settings last taken (see _follow_settings()); False: sizes of its own.
        self._sizes: _Sizes | bool | None = None if follows else False
        self._latency = LatencyStore()
        self._folds: dict[tuple[Any, ...], Fold] = {}
        self._findings: deque[Finding] = deque(maxlen=FINDINGS_KEPT)
        # Never replaced: the sending threads append to it through ``recorder.pending``.
        self.pending: deque[SignalEvent | Origin] = deque()
        self.lost = 0  # events and requests that found ``pending`` full
        self.subscribers: tuple[Subscriber, ...] = ()
        # Called on the sending thread as each send finishes, for capture(): tests read what
        # they captured before anything is drained.
        self.immediate: tuple[Subscriber, ...] = ()
        # Called in a drain with each send folded by DETAIL_LIMIT (a LightSend).
        self.folded: tuple[Callable[[LightSend], None], ...] = ()
        self.subscriber_failures = 0
        self._lock = threading.RLock()
        self._draining = False
        self._thread: threading.Thread | None = None

    # -- on the sending thread ---------------------------------------------------------------

    def record(self, event: SignalEvent) -> None:
        """Take a finished send; it is counted and shown at the next drain."""
        pending = self.pending
        if len(pending) < PENDING_LIMIT:
            pending.append(event)
        else:
            self.lost += 1

    def notify_immediate(self, event: SignalEvent) -> None:
        with context.suspended():
            for subscriber in self.immediate:
                self._call(subscriber, event)

    def record_request(self, origin: Origin) -> None:
        """Take a finished request (or command); queued behind the sends it made."""
        self.record(origin)  # type: ignore[arg-type]

    # -- off it --------------------------------------------------------------------------------

    def drain(self, wait: bool = True) -> None:
        """Account everything pending: events, statistics, requests, subscribers.

        Without ``wait``, return at once if another thread is draining (its events reach the
        subscribers when it is done).
        """
        # Always through the lock: another thread's drain may hold events it took from
        # ``pending`` and has not accounted yet.
        if not self._lock.acquire(blocking=wait):
            return
        try:
            self._follow_settings()
            if self._draining or not self.pending:  # (_draining: a subscriber reading us)
                return
            self._draining = True
            try:
                with context.suspended():
                    self._drain()
            finally:
                self._draining = False
        finally:
            self._lock.release()

    def _drain(self) -> None:
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
                item.storms = latency.record_origin(item)
                self._requests.append(item)
                continue
            if type(item) is Finding:
                self._findings.append(item)
                for subscriber in subscribers:  # rows of their own, for dashboards and Redis
                    self._call(subscriber, item)  # type: ignore[arg-type]
                continue
            if type(item) is LightSend:
                batch.append(item)  # type: ignore[arg-type]
                if item.origin is not process:
                    item.origin.count_calls(item)  # type: ignore[arg-type]
                self._fold(item)
                for folded in self.folded:
                    self._call(folded, item)  # type: ignore[arg-type]
                continue
            event: SignalEvent = item  # type: ignore[assignment]
            batch.append(event)
            events.append(event)
            if event.origin is not process:
                event.origin.count_calls(event)
            for subscriber in subscribers:
                self._call(subscriber, event)
        if batch:
            latency.record_many(batch)

    def _fold(self, send: LightSend) -> None:
        folds = self._folds
        origin = send.origin
        # The process's folds are per second, as its detail limit is.
        when = send.start_ns // 1_000_000_000 if origin is context.PROCESS_ORIGIN else 0
        calls = send.calls or [(None, False, send.start_ns, send.duration_ns, None, None)]
        for receiver_key, _, start, duration, _, _ in calls:  # see events.Call
            key = (origin, send.signal_key, send.sender_key, receiver_key, when)
            fold = folds.get(key)
            if fold is None:
                fold = folds[key] = Fold(send, receiver_key)
                if len(folds) > self._events.maxlen:  # type: ignore[operator]
                    del folds[next(iter(folds))]
            fold.add(start, duration)

    def _call(self, subscriber: Subscriber, event: SignalEvent) -> None:
        try:
            subscriber(event)
        except Exception:
            self.subscriber_failures += 1
            if self.subscriber_failures == 1:
                logger.exception("signal_dashboard subscriber %r failed", subscriber)

    def ran(self, signal: Any, code: Any) -> bool:
        """Whether a call of receiver ``code`` for ``signal`` was recorded: in the statistics
        or still pending. Never drains: the garbage collector may ask in the middle of one."""
        handle = handle_of(signal)
        for signal_key, _, receiver_key in list(self._latency.calls):
            if signal_key is handle and receiver_key is code:
                return True
        for item in list(self.pending):
            if type(item) is SignalEvent or type(item) is LightSend:
                sent = item.signal_key is handle  # type: ignore[union-attr]
                if sent and any(call[CALL_KEY] is code for call in item.calls):
                    return True
        return False

    @property
    def events(self) -> deque[SignalEvent]:
        """The most recent events, oldest first."""
        self.drain()
        return self._events

    @property
    def folds(self) -> list[Fold]:
        """The folds of the light sends (see DETAIL_LIMIT), oldest first; as many are kept as
        events."""
        self.drain()
        with self._lock:
            return list(self._folds.values())

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
            self.drain_quietly()

    def drain_quietly(self, wait: bool = True) -> None:
        """drain(), off the sending threads: a failure is logged, not raised."""
        try:
            self.drain(wait)
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
            self.immediate = (*self.immediate, subscriber)
        else:
            self.drain()  # what was sent before subscribing is not the subscriber's
            self.subscribers = (*self.subscribers, subscriber)

        def unsubscribe() -> None:
            if immediate:
                self.immediate = tuple(s for s in self.immediate if s is not subscriber)
                return
            self.drain()  # what was sent before unsubscribing still is
            self.subscribers = tuple(s for s in self.subscribers if s is not subscriber)

        return unsubscribe

    def subscribe_folded(self, subscriber: Callable[[LightSend], None]) -> Callable[[], None]:
        """Call ``subscriber(send)`` in a drain for every send folded from now on; returns the
        unsubscribe function."""
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
            self._findings.clear()
            self._requests.clear()
            self._latency.clear()


recorder = Recorder()
os.register_at_fork(after_in_child=recorder._after_fork)
