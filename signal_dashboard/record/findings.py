"""Findings about the queries receivers make, judged off the sending thread.

- ``query_in_init``: a ``pre_init`` or ``post_init`` receiver that queries. Those signals are
  sent for every model instance made, so every row of every queryset runs its queries. Found
  once per receiver.
- ``query_repeated``: one receiver running the same statement ``QUERY_REPEAT_THRESHOLD``
  times or more inside one request or command (an N+1 inside the receiver).
- ``query_heavy``: a receiver whose calls inside one request or command ran more than
  ``QUERY_REQUEST_THRESHOLD`` queries.

A receiver's own queries count here, not those of the sends it made (those are their own
receivers'). Each finding names the receiver's ``file:line`` and, like the hygiene findings,
goes through :meth:`hygiene.Hygiene.found`: findings about code the project did not write are
left out unless ``HYGIENE_INCLUDE_INSTALLED`` is on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.db.models.signals import post_init, pre_init

from ..capture.context import PROCESS_ORIGIN
from ..capture.events import SignalEvent
from ..capture.finding import Finding
from ..capture.hygiene import hygiene
from ..capture.labels import receiver_label, signal_label
from ..capture.queries import per_call, shown_sql
from ..capture.tally import SLOT_KEY, SLOT_QUERIES, SLOT_STATEMENTS, Tally
from ..conf import get_config

# Receivers already found querying in pre_init or post_init (by label): once is enough.
_init_found: set[str] = set()


def count_event(event: SignalEvent) -> None:
    """Charge a finished send's queries to its receivers in its request or command, and find
    an init receiver that queries."""
    if event.queries is None:
        return
    calls = event.calls
    made = per_call(calls, event.queries, event.nested_queries)
    origin = event.origin
    signal = event.signal_key()
    for call, queries in zip(calls, made, strict=True):
        if not queries.count:
            continue
        if signal is pre_init or signal is post_init:
            _found_in_init(signal, call[0], queries.count)
        if origin is not PROCESS_ORIGIN:
            origin.count_queries(call[0], queries.count, queries.by_statement())


def check_tally(tally: Tally) -> None:
    """Find an init receiver that queries among a folded (signal, sender)'s."""
    signal = tally.signal_key()
    if signal is not pre_init and signal is not post_init:
        return
    for slot in list(tally.receivers.values()):
        if slot[SLOT_QUERIES]:
            _found_in_init(signal, slot[SLOT_KEY], slot[SLOT_QUERIES])


def count_tallies(tallies: Iterable[Tally]) -> None:
    """Charge a finished request's folded sends' queries to their receivers (a last time)."""
    for tally in tallies:
        origin = tally.origin
        for slot in list(tally.receivers.values()):
            if slot[SLOT_QUERIES]:
                origin.count_queries(slot[SLOT_KEY], slot[SLOT_QUERIES], slot[SLOT_STATEMENTS])


def judge(origin: Any) -> None:
    """The findings of a finished request or command: receivers that repeated a statement, or
    ran too many queries, inside it."""
    if not origin.receiver_queries:
        return
    config = get_config()
    repeat = config["QUERY_REPEAT_THRESHOLD"]
    heavy = config["QUERY_REQUEST_THRESHOLD"]
    where = origin.as_dict()
    # Judged once: the statements go, not kept as long as the request's summary is.
    judged, origin.receiver_queries = origin.receiver_queries, {}
    for key, count, statements in judged.values():
        label, location = receiver_label(key)
        sql, times = max(
            ((sql, times) for sql, times in statements.items() if not _controls(sql)),
            key=lambda item: item[1],
            default=("", 0),
        )
        if times >= repeat:
            hygiene.found(
                Finding(
                    "query_repeated",
                    "",
                    label,
                    [location],
                    origin=where,
                    count=times,
                    statement=shown_sql(sql),
                    began_ns=origin.started_ns,
                )
            )
        if count > heavy:
            hygiene.found(
                Finding(
                    "query_heavy",
                    "",
                    label,
                    [location],
                    origin=where,
                    count=count,
                    began_ns=origin.started_ns,
                )
            )


def _found_in_init(signal: Any, key: Any, count: int) -> None:
    label, location = receiver_label(key)
    if label in _init_found:
        return
    _init_found.add(label)
    hygiene.found(Finding("query_in_init", signal_label(signal), label, [location], count=count))


# Transaction control: run as often as the transactions and savepoints a receiver opens, and
# never a query it could batch, so never "the same query N times".
_TRANSACTION_CONTROL = re.compile(
    r"\s*(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE|START\s+TRANSACTION)\b", re.IGNORECASE
)


def _controls(sql: Any) -> bool:
    return _TRANSACTION_CONTROL.match(str(sql)) is not None
