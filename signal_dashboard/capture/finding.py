"""A finding: one thing that went wrong with a signal's receivers, as it happened.

Made on the sending side (hygiene.py) or off it (record/findings.py, the queries receivers
make), and kept by the recorder, which hands it on like an event: a row of its own on the
dashboards, a record in the Redis history and in ``events.ndjson``.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from .context import HOST, PID, current_origin
from .labels import short_label
from .locations import is_project_code

KINDS = (
    "lost",
    "doubled",
    "connected",
    "disconnect_missed",
    # The queries receivers make (see record/findings.py).
    "query_in_init",
    "query_repeated",
    "query_heavy",
)
_next_id = itertools.count(1).__next__


@dataclass
class Finding:
    """One thing that went wrong with a signal's receivers, as it happened."""

    kind: str  # one of KINDS
    signal: str
    receiver: str
    locations: list[str]  # where it was connected (and, doubled, connected again)
    # The request or command running when it happened (the process, outside them).
    origin: dict[str, Any] = field(default_factory=lambda: current_origin.get().as_dict())
    timestamp: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: f"{HOST}:{PID}:f{_next_id()}")
    # A lost receiver's connect() (time.perf_counter_ns()): a test report charges the loss to
    # the test that connected it, not to the one running when the collector found it.
    connected_ns: int | None = None
    # A query finding's figure (queries, or runs of one statement) and statement (as shown),
    # and when its request or command began (perf_counter_ns), for a test report to place it.
    count: int = 0
    statement: str = ""
    began_ns: int | None = None
    # As events have them: a finding is never inside a send, and runs no receiver.
    parent = None
    calls: tuple[()] = ()

    @property
    def own(self) -> bool:
        """Whether the project's code made it (rather than Django's or an installed package's)."""
        return any(map(is_project_code, self.locations))

    @property
    def message(self) -> str:
        where = " and ".join(self.locations) or "an unknown place"
        who = short_label(self.receiver.replace(".<locals>", "")) if self.receiver else "a receiver"
        if self.kind == "lost":
            return f"Receiver lost: {who}, garbage-collected while connected (at {where})"
        if self.kind == "doubled":
            return f"Receiver doubled: {who}, connected again under another key (at {where})"
        if self.kind == "connected":
            return f"Receiver connected at run time: {who} (at {where})"
        if self.kind == "query_in_init":
            return (
                f"Receiver queries on every model instance: {who} ran {self.count} quer"
                f"{'y' if self.count == 1 else 'ies'} in a {short_label(self.signal)} receiver, "
                f"which runs for every row loaded (at {where})"
            )
        if self.kind == "query_repeated":
            return (
                f"Same query {self.count} times in one receiver: {who} ran "
                f"{self.statement} {self.count} times in {self._origin_name} (at {where})"
            )
        if self.kind == "query_heavy":
            return f"Receiver ran {self.count} queries in {self._origin_name}: {who} (at {where})"
        return f"disconnect() removed nothing: {who} (at {where})"

    @property
    def _origin_name(self) -> str:
        origin = self.origin
        if origin.get("kind") == "request":
            return f"one request ({origin.get('method')} {origin.get('path')})"
        return f"one {origin.get('kind')} ({origin.get('name')})"

    def as_row(self) -> dict[str, Any]:
        """The stream's row: a send's fields, its outcome the finding."""
        return {
            "id": self.id,
            "type": self.kind,
            "timestamp": self.timestamp,
            "signal": self.signal,
            "sender": "",
            "method": self.kind,
            "duration_ns": 0,
            "origin": self.origin,
            "depth": 0,
            "parent_id": None,
            "payload_after_send": False,
            "receiver_count": 0,
            "receivers": [self.receiver] if self.receiver else [],
            "slowest_receiver": None,
            "slowest_receiver_ns": 0,
            "ok": False,
            "error": self.message,
        }

    def as_dict(self) -> dict[str, Any]:
        """The record ``events.ndjson`` holds (its ``type`` says which finding)."""
        return {
            "id": self.id,
            "type": self.kind,
            "timestamp": self.timestamp,
            "signal": self.signal,
            "receiver": self.receiver,
            "locations": self.locations,
            "message": self.message,
            "origin": self.origin,
            "pid": PID,
            "host": HOST,
            **({"count": self.count, "statement": self.statement} if self.count else {}),
        }

    def as_row_and_dict(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.as_row(), self.as_dict()
