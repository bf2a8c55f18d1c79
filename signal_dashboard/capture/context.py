"""Context variables: what is being dispatched, on whose behalf, and our re-entrancy guard.

Events (events.py) name their origin, so this module names events in words, not imports: a
send here is an ``events.SignalEvent``, a tally an ``events.Tally``.
"""

from __future__ import annotations

import itertools
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

PID = os.getpid()
HOST = socket.gethostname()

_next_origin_id = itertools.count(1).__next__


@dataclass(eq=False)
class Origin:
    """What caused a send: an HTTP request, a management command, a task run, a test (under
    Django's runner), or the process itself.

    One object is shared by every event sent on its behalf; the request fields
    (``status``, ``user_id``) and the task fields are filled in as they become known.
    """

    kind: str  # "request", "command", "task", "test" or "process"
    name: str  # "GET /pizzas/", "migrate", the task's function path, or the script's name
    request_id: str | None = None
    method: str | None = None
    path: str | None = None
    user_id: str | None = None
    status: int | None = None
    started_ns: int = 0
    duration_ns: int | None = None
    signal_count: int = 0
    receiver_ns: int = 0
    # Every query it ran, in receivers or not, and their time (see queries.py), and of them
    # those its receivers ran (nested sends' included).
    query_count: int = 0
    query_ns: int = 0
    receiver_query_count: int = 0
    receiver_query_ns: int = 0
    # Per receiver (by id of its key): [key, its own queries, how many times it ran each
    # statement], for the query findings (see record/findings.py).
    receiver_queries: dict[int, list[Any]] = field(default_factory=dict, repr=False)
    # Code object (or class) of the slowest top-level receiver; see labels.receiver_label().
    slowest_receiver_key: object = None
    slowest_receiver_ns: int = 0
    # Calls per receiver key, nested sends included, for storm detection.
    receiver_calls: dict[int, int] = field(default_factory=dict)
    _receiver_keys: dict[int, object] = field(default_factory=dict, repr=False)
    # Receivers that ran more than STORM_THRESHOLD times here: (label, calls), set at the end.
    storms: list[tuple[str, int]] = field(default_factory=list)
    error: str | None = None  # a command's exception or a task's error, as "Type: message"
    # A task run's (see tasks.py): its id, backend alias, attempt (1 for the first) and status
    # ("RUNNING", "SUCCESSFUL", "FAILED"), and what enqueued it (tasks.link()), if known here.
    task_id: str | None = None
    backend: str | None = None
    attempt: int | None = None
    task_status: str | None = None
    enqueued_by: dict[str, Any] | None = None
    # The origin current before a task run began, current again when it ends.
    previous: Origin | None = field(default=None, repr=False)
    # Tasks it enqueued ({"name", "task_id", "backend"} each), and how many more.
    enqueued: list[dict[str, Any]] = field(default_factory=list)
    enqueued_more: int = 0
    # Sends made here per (id of signal, id of sender), against DETAIL_LIMIT, each an
    # events.Tally, folding those past it (the process's are counted per second and thread:
    # see send._ProcessTallies).
    sent: dict[tuple[int, int], Any] = field(default_factory=dict, repr=False)
    # Receivers connected here and not disconnected yet, by (id of signal, lookup key): each
    # a "connected" finding (capture/finding.py) if it is still there when this origin ends
    # (or a marker of one connected before and disconnected here: see hygiene.py).
    connects: dict[Any, Any] = field(default_factory=dict, repr=False)
    # Names the request or command in this process's dashboard URLs (request ids may repeat).
    id: int = field(default_factory=_next_origin_id)
    pid: int = field(default=PID)
    host: str = field(default=HOST)

    def count_calls(self, event: Any) -> None:
        """Count a send's receiver calls (nested sends included) and note the slowest
        top-level one. ``signal_count`` and ``receiver_ns`` are counted as the send finishes."""
        calls = self.receiver_calls
        top_level = event.parent is None
        for key, _, _, duration, _, _ in event.calls:  # see events.Call
            ident = id(key)  # see receiver_call_counts()
            count = calls.get(ident)
            if count is None:
                self._receiver_keys[ident] = key
                calls[ident] = 1
            else:
                calls[ident] = count + 1
            if top_level and duration > self.slowest_receiver_ns:
                self.slowest_receiver_ns = duration
                self.slowest_receiver_key = key

    def count_folded(self, key: object, calls: int, longest_ns: int, top_level: bool) -> None:
        """Count ``calls`` folded calls of a receiver (see count_calls())."""
        ident = id(key)
        count = self.receiver_calls.get(ident)
        if count is None:
            self._receiver_keys[ident] = key
            count = 0
        self.receiver_calls[ident] = count + calls
        if top_level and longest_ns > self.slowest_receiver_ns:
            self.slowest_receiver_ns = longest_ns
            self.slowest_receiver_key = key

    def count_queries(self, key: object, count: int, statements: dict[str, int]) -> None:
        """Charge ``count`` queries of a receiver, ``statements`` by SQL, to this origin."""
        entry = self.receiver_queries.get(id(key))
        if entry is None:
            entry = self.receiver_queries[id(key)] = [key, 0, {}]
        entry[1] += count
        kept = entry[2]
        for sql, times in statements.items():
            kept[sql] = kept.get(sql, 0) + times

    def receiver_call_counts(self) -> dict[object, int]:
        """Calls per receiver key. Counted by id() on the hot path, as hashing a code object
        hashes its contents every time; ``_receiver_keys`` holds the keys, so ids stay unique."""
        counts: dict[object, int] = {}
        keys = self._receiver_keys
        for ident, count in list(self.receiver_calls.items()):
            key = keys[ident]
            counts[key] = counts.get(key, 0) + count
        return counts

    def as_dict(self) -> dict[str, object]:
        data = {
            "kind": self.kind,
            "name": self.name,
            "id": self.id,
            "pid": self.pid,
            "host": self.host,
        }
        if self.kind == "request":
            data.update(
                request_id=self.request_id,
                method=self.method,
                path=self.path,
                user_id=self.user_id,
            )
        elif self.kind == "task":
            by = self.enqueued_by
            data.update(
                task_id=self.task_id,
                backend=self.backend,
                attempt=self.attempt,
                enqueued_by=None if by is None else by["label"],
            )
        return data


def _process_origin() -> Origin:
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    return Origin(kind="process", name=script)


PROCESS_ORIGIN = _process_origin()

# The request or command being handled in this context; the process otherwise.
current_origin: ContextVar[Origin] = ContextVar("signal_dashboard_origin", default=PROCESS_ORIGIN)


class _Suspended:
    """The value of ``current_event`` while our own code runs."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SUSPENDED"


SUSPENDED = _Suspended()

# The asend (or sync send with async receivers) whose receivers are running in this context,
# so a nested send can name its parent (sync sends are in ``sync_send``); SUSPENDED while our
# own code runs (subscribers, the dashboard's requests), so the signals it sends are not
# traced. One variable for both keeps the hot path to a single lookup.
current_event: ContextVar[Any] = ContextVar("signal_dashboard_current_event", default=None)


class _SyncSend(threading.local):
    """The sync send whose receivers are running on this thread, if any.

    Sync sends nest within one thread, so a thread-local set and restored around their
    receivers names a nested send's parent. Setting ``current_event`` instead would cost a new
    context mapping and token per send. ``asend()`` still sets ``current_event``: its
    receivers run in other tasks and threads, which copy the context.
    """

    event: Any = None


sync_send = _SyncSend()


@contextmanager
def suspended() -> Iterator[None]:
    """Signals sent inside the block are not traced."""
    token = current_event.set(SUSPENDED)
    try:
        yield
    finally:
        current_event.reset(token)
