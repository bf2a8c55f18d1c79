"""A request's (or command's) signal sends laid out against its timeline, nested sends as a tree.

Each send and each receiver call becomes a bar placed by its start and length as a share of
the request's duration. A receiver's *self* time is its total time less the nested sends that
started while it ran (sends its own code caused).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..capture.context import Origin
    from ..capture.events import ReceiverCall, SignalEvent

# Bars shorter than this share of the timeline are drawn at this width, so they stay visible.
MIN_BAR_PERCENT = 0.3


@dataclass
class Bar:
    """One line of the waterfall: a send or a receiver call."""

    kind: str  # "send" or "receiver"
    label: str
    depth: int
    start_ns: int  # from the start of the request
    duration_ns: int
    offset_percent: float
    width_percent: float
    self_ns: int = 0
    ok: bool = True
    event_id: str = ""
    history_id: str = ""  # another process's send: where the backend keeps it
    detail: str = ""  # the sender of a send, the location of a receiver
    queries: int = 0  # a receiver call's own queries
    total_queries: int = 0  # and with those of the sends it made (a send's: all its calls')


@dataclass
class Waterfall:
    origin: Origin
    bars: list[Bar] = field(default_factory=list)
    missing: int = 0  # sends of this request no longer in the recent-events buffer
    # Its timeline: the request's duration, or longer if a send ended after it (a request's
    # request_finished is sent as the server closes the response).
    span_ns: int = 0


def build(origin: Origin, events: Iterable[SignalEvent]) -> Waterfall:
    """The waterfall of ``origin`` from the buffered ``events`` (those it caused)."""
    own = sorted((event for event in events if event.origin is origin), key=_start)
    waterfall = Waterfall(origin, missing=max(0, origin.signal_count - len(own)))
    start = origin.started_ns
    # request_finished is sent as the server closes the response, after the request's end.
    span = waterfall.span_ns = max(
        origin.duration_ns or 0,
        max((event.start_ns + event.duration_ns - start for event in own), default=0),
    )
    children: dict[int, list[SignalEvent]] = {}
    present = {id(event) for event in own}
    roots = []
    for event in own:
        parent = event.parent
        if parent is not None and id(parent) in present:
            children.setdefault(id(parent), []).append(event)
        else:
            roots.append(event)

    def bar(kind: str, label: str, depth: int, begin: int, duration: int) -> Bar:
        offset = _percent(begin - start, span)
        width = max(MIN_BAR_PERCENT, _percent(duration, span))
        return Bar(kind, label, depth, begin - start, duration, offset, min(width, 100 - offset))

    def add(event: SignalEvent, depth: int) -> None:
        send = bar("send", event.signal_label, depth, event.start_ns, event.duration_ns)
        send.ok, send.event_id, send.detail = event.ok, event.uid, event.sender_label
        send.history_id = getattr(event, "history_id", "")
        send.self_ns = event.duration_ns - event.receiver_ns
        send.total_queries = event.queries_total["count"]
        waterfall.bars.append(send)
        calls = event.receivers
        # Each nested send belongs to the first receiver running when it started.
        inside: dict[int, list[SignalEvent]] = {}
        outside = []
        for child in children.get(id(event), []):
            index = next((i for i, call in enumerate(calls) if _within(child, call)), None)
            if index is None:
                outside.append(child)
            else:
                inside.setdefault(index, []).append(child)
        for index, call in enumerate(calls):
            nested = inside.get(index, [])
            line = bar("receiver", call.label, depth + 1, call.start_ns, call.duration_ns)
            line.ok, line.detail = call.ok, call.location
            line.queries, line.total_queries = call.queries.count, call.queries.total_count
            line.self_ns = max(0, call.duration_ns - sum(child.duration_ns for child in nested))
            waterfall.bars.append(line)
            for child in nested:
                add(child, depth + 2)
        for child in outside:
            add(child, depth + 1)

    for event in roots:
        add(event, 0)
    return waterfall


def build_recorded(
    summary: Mapping[str, Any], events: list[tuple[str, dict[str, Any]]]
) -> Waterfall:
    """The waterfall of another process's request, command or task run (its summary: see
    ``queries.origin_data()``) from what the backend still has of it, each as (history id,
    whole form): its sends (not its findings) laid out by their recorded starts, each receiver
    call by its start in its send, as :func:`build` lays out this process's."""
    duration = summary.get("duration_ns") or 0
    origin = SimpleNamespace(
        started_ns=round(summary["finished_at"] * 1e9) - duration,
        duration_ns=duration,
        signal_count=summary.get("signal_count") or 0,
    )
    by_id: dict[str, SimpleNamespace] = {}
    sends = [(history_id, data) for history_id, data in events if "receivers" in data]
    for history_id, data in sorted(sends, key=lambda item: item[1]["timestamp"]):
        start = round(data["timestamp"] * 1e9)
        calls = [
            SimpleNamespace(
                label=call["receiver"],
                location=call["location"],
                start_ns=start + call.get("start_offset_ns", 0),
                duration_ns=call["duration_ns"],
                ok=call["error"] is None,
                queries=SimpleNamespace(
                    count=call["queries"]["count"], total_count=call["queries"]["total_count"]
                ),
            )
            for call in data["receivers"]
        ]
        by_id[data["id"]] = SimpleNamespace(
            origin=origin,
            parent=data.get("parent_id"),  # an id until all are made
            start_ns=start,
            duration_ns=data["duration_ns"],
            signal_label=data["signal"],
            sender_label=data["sender"],
            ok=data["ok"],
            uid=data["id"],
            history_id=history_id,
            receiver_ns=sum(call.duration_ns for call in calls),
            queries_total=data.get("queries_total") or {"count": 0},
            receivers=calls,
        )
    for event in by_id.values():
        event.parent = by_id.get(event.parent) if event.parent is not None else None
    return build(origin, by_id.values())  # type: ignore[arg-type]


def _start(event: SignalEvent) -> int:
    return event.start_ns


def _within(event: SignalEvent, call: ReceiverCall) -> bool:
    return call.start_ns <= event.start_ns < call.start_ns + call.duration_ns


def _percent(part: int, whole: int) -> float:
    return 0.0 if whole <= 0 else min(100.0, max(0.0, part * 100 / whole))
