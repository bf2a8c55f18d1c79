"""The queries receivers make: counted and timed per receiver call, on every connection.

Every database connection (``django.db.connections``: those made before install() and those
made after, in any thread) gets one execute wrapper, Django's own hook
(``connection.execute_wrapper()``), first in its list so that a wrapper a project adds and
removes around its own code is added and removed as it would be without us. The wrapper runs
the query exactly as it would run anyway, and afterwards notes it:

- on the request or command it ran in (``Origin.query_count``, ``query_ns``): its whole count;
- inside a traced send, as a plain tuple on the innermost send (``QueryRecord``): when it
  started, how long it took, its SQL as given with ``%s`` placeholders (never its
  parameters), and which async receiver of the send ran it, if one did. Which sync receiver
  ran it is read later from the calls' times, as a send's sync receivers run one after
  another; nothing is added to the receiver loop.

A send that finishes hands its queries' totals to the send it is nested in
(:func:`hand_up`), so a receiver's total counts the queries of the sends it made, as its
duration does.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Iterable, Mapping
from time import perf_counter_ns
from typing import Any

from django.db import connections
from django.dispatch import dispatcher

from .context import PROCESS_ORIGIN, SUSPENDED, current_event, current_origin, sync_send

# One query inside a send: (start_ns, duration_ns, sql, the async receiver's key or None).
QueryRecord = tuple[int, int, str, Any]
QUERY_START, QUERY_DURATION, QUERY_SQL, QUERY_RECEIVER = range(4)
# A nested send's queries, handed to its parent as it finishes:
# (the nested send's start_ns, its queries, their time, the async receiver's key or None).
NestedQueries = tuple[int, int, int, Any]
NESTED_START, NESTED_COUNT, NESTED_NS, NESTED_RECEIVER = range(4)

# The key of the async receiver running in this context: async receivers of a send run at
# once, so their queries cannot be told apart by time. Django 5.2 runs each in a task of its
# own, whose context tracing sets it in (ASYNC_MARKED). Django 6 runs them in tasks that share
# one context, copied back into the sender's: nothing is set there, and a query that more than
# one running async receiver might have made is counted for the send but for no receiver.
async_receiver: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "signal_dashboard_async_receiver", default=None
)
ASYNC_MARKED = not hasattr(dispatcher, "_run_parallel")

_installed = False
# connections.create_connection as it was: the class's method, or an instance's own.
_original_create_connection: Callable[[str], Any] | None = None
_had_own_create_connection = False
# Failures of our own bookkeeping: counted, never raised into the query.
failures = 0


def count_query(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Mapping[str, Any]
) -> Any:
    """The execute wrapper: the query runs as it would; then it is counted where it belongs
    (in one function: it runs for every query)."""
    if not _installed:
        return execute(sql, params, many, context)
    start = perf_counter_ns()
    try:
        return execute(sql, params, many, context)
    finally:
        duration = perf_counter_ns() - start
        try:
            origin = current_origin.get()
            if origin is not PROCESS_ORIGIN:
                origin.query_count += 1
                origin.query_ns += duration
            # The innermost send running here (send._current_parent(), which cannot be
            # imported here: send.py imports this module).
            send = sync_send.event
            parent = current_event.get()
            if (
                parent is not None
                and parent is not SUSPENDED
                and (send is None or parent.start_ns > send.start_ns)
            ):
                send = parent
            if send is not None and parent is not SUSPENDED:
                record = (start, duration, sql, async_receiver.get())
                queries = send.queries
                if queries is None:
                    send.queries = [record]
                else:
                    queries.append(record)
        except Exception:
            global failures
            failures += 1


def hand_up(send: Any, parent: Any = None) -> None:
    """Give a finished send's queries (its own and its nested sends') to the send it is nested
    in (``parent``, if not its own), whose receiver made it; a send made outside any
    receiver, to its request or command."""
    count, spent = query_totals(send)
    if not count:
        return
    if parent is None:
        parent = send.parent
    if parent is None:
        origin = send.origin
        if origin is not PROCESS_ORIGIN:
            origin.receiver_query_count += count
            origin.receiver_query_ns += spent
        return
    if parent is SUSPENDED or not hasattr(parent, "nested_queries"):
        return
    handed = (send.start_ns, count, spent, async_receiver.get())
    if parent.nested_queries is None:
        parent.nested_queries = [handed]
    else:
        parent.nested_queries.append(handed)


def move(source: Any, target: Any) -> None:
    """Move what ``source`` noted (a folded send with async receivers) to ``target`` (its
    tally, or the full event it became)."""
    for name in ("queries", "nested_queries"):
        noted = getattr(source, name)
        if noted is not None:
            setattr(source, name, None)
            held = getattr(target, name)
            setattr(target, name, noted if held is None else held + noted)


def query_totals(send: Any) -> tuple[int, int]:
    """(queries, their time) of a send: its receivers' own and those of the sends they made."""
    count = spent = 0
    for record in send.queries or ():
        count += 1
        spent += record[QUERY_DURATION]
    for nested in send.nested_queries or ():
        count += nested[NESTED_COUNT]
        spent += nested[NESTED_NS]
    return count, spent


def per_call(
    calls: Iterable[tuple[Any, bool, int, int]],
    queries: Iterable[QueryRecord] | None,
    nested: Iterable[NestedQueries] | None,
) -> list[CallQueries]:
    """The queries of each of a send's receiver calls ((key, is_async, start_ns,
    duration_ns, ...) each), in the calls' order."""
    calls = list(calls)
    found = [CallQueries() for _ in calls]
    if not calls:
        return found
    for record in queries or ():
        index = _call_of(calls, record[QUERY_START], record[QUERY_RECEIVER])
        if index is not None:
            found[index].add_own(record[QUERY_SQL], record[QUERY_DURATION])
    for handed in nested or ():
        index = _call_of(calls, handed[NESTED_START], handed[NESTED_RECEIVER])
        if index is not None:
            found[index].add_nested(handed[NESTED_COUNT], handed[NESTED_NS])
    return found


def _call_of(calls: list[tuple[Any, ...]], start_ns: int, receiver: Any) -> int | None:
    """The index of the call that ran a query (or a nested send) that started at
    ``start_ns``: the async receiver's own if it was named, else the one call whose run covers
    that time (None if none or several do)."""
    if receiver is not None:
        for index, call in enumerate(calls):
            if call[0] is receiver:
                return index
        return None
    found = None
    for index, (_, is_async, start, duration, *_) in enumerate(calls):
        if start <= start_ns <= start + duration and not (is_async and ASYNC_MARKED):
            if found is not None:
                return None
            found = index
    return found


class CallQueries:
    """The queries one receiver call made: its own (by statement) and, in its total, those of
    the sends it made."""

    __slots__ = ("_by_sql", "count", "duration_ns", "total_count", "total_ns")

    def __init__(self) -> None:
        self.count = 0
        self.duration_ns = 0
        self.total_count = 0
        self.total_ns = 0
        self._by_sql: dict[str, list[int]] = {}  # sql -> [times run, their time]

    def add_own(self, sql: str, duration_ns: int) -> None:
        self.count += 1
        self.duration_ns += duration_ns
        self.total_count += 1
        self.total_ns += duration_ns
        statement = self._by_sql.get(sql)
        if statement is None:
            self._by_sql[sql] = [1, duration_ns]
        else:
            statement[0] += 1
            statement[1] += duration_ns

    def add_nested(self, count: int, duration_ns: int) -> None:
        self.total_count += count
        self.total_ns += duration_ns

    def by_statement(self) -> dict[str, int]:
        """How many times it ran each of its own statements (SQL as run)."""
        return {sql: count for sql, (count, _) in self._by_sql.items()}

    @property
    def statements(self) -> list[dict[str, Any]]:
        """Its own statements, those run most first, each once with how often it ran and for
        how long (SQL as shown: placeholders, never values)."""
        ordered = sorted(self._by_sql.items(), key=lambda item: (-item[1][0], -item[1][1]))
        return [
            {"sql": shown_sql(sql), "count": count, "duration_ns": spent}
            for sql, (count, spent) in ordered
        ]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the same names as its attributes."""
        return {
            "count": self.count,
            "duration_ns": self.duration_ns,
            "total_count": self.total_count,
            "total_ns": self.total_ns,
            "statements": self.statements,
        }


# Shown SQL: quoted literals (a project's raw SQL may hold values in its text) become '?',
# runs of white space one space, and at most SQL_SHOWN characters are kept.
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_SPACE = re.compile(r"\s+")
SQL_SHOWN = 1000


def shown_sql(sql: Any) -> str:
    """A statement as pages and exports show it: its placeholders, never values."""
    text = _SPACE.sub(" ", _LITERAL.sub("'?'", str(sql))).strip()
    return text if len(text) <= SQL_SHOWN else text[: SQL_SHOWN - 1] + "…"


# --- Installing the wrapper on every connection ---------------------------------------------


def _wrap(connection: Any) -> Any:
    if count_query not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, count_query)
    return connection


def _create_connection(alias: str) -> Any:
    assert _original_create_connection is not None
    return _wrap(_original_create_connection(alias))


def install() -> None:
    """Count queries from now on: on this thread's connections now, and on every connection
    made from now on."""
    global _installed, _original_create_connection, _had_own_create_connection
    if _installed:
        return
    _installed = True
    _had_own_create_connection = "create_connection" in vars(connections)
    _original_create_connection = connections.create_connection
    connections.create_connection = _create_connection  # type: ignore[method-assign]
    for connection in _made_connections():
        _wrap(connection)


def _made_connections() -> list[Any]:
    """This thread's connections made so far, without reading the settings: none were made
    before the handler first read them."""
    if "settings" not in vars(connections):
        return []
    return connections.all(initialized_only=True)


def uninstall() -> None:
    """Stop counting: the wrapper lets every query through untouched, and leaves this thread's
    connections (others' leave as their threads end)."""
    global _installed, _original_create_connection
    if not _installed:
        return
    _installed = False
    if _had_own_create_connection:
        connections.create_connection = _original_create_connection  # type: ignore[method-assign]
    elif "create_connection" in vars(connections):
        del connections.create_connection  # the class's method again
    _original_create_connection = None
    for connection in _made_connections():
        while count_query in connection.execute_wrappers:
            connection.execute_wrappers.remove(count_query)
