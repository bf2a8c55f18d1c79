"""OpenTelemetry export (the ``opentelemetry`` extra and the ``OPENTELEMETRY`` setting).

Each traced send becomes a span (``post_save pizzeria.Pizza``) with a child span per receiver,
under the span that was current when the send finished (the request's, with
opentelemetry-instrumentation-django); a send made inside a receiver is a child of that
receiver's span. Sends folded by ``DETAIL_LIMIT`` are not spans: their receivers' durations go
to the ``django.signal.receiver.duration`` histogram, so counts stay exact.

Nothing of this runs on the sending thread but taking the current context: spans are made from
the recorded events, with their recorded times, off it (a recorder subscriber).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ..capture.events import WALL_OFFSET_NS, SignalEvent, call_start
from ..capture.histogram import bucket_middle
from ..capture.labels import receiver_label
from ..capture.queries import per_call

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..capture.context import Origin
    from ..capture.histogram import Histogram
    from ..capture.tally import Tally

SCOPE = "signal_dashboard"
DURATION_METRIC = "django.signal.receiver.duration"
# Nested sends waiting for their top-level send, and contexts waiting for their send; past
# these, the oldest go (a send whose parent was never recorded, say).
MAX_WAITING = 10_000


class Exporter:
    """Turns recorded events into spans and folded sends into histogram points."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        meter = metrics.get_meter(SCOPE, meter_provider=meter_provider)
        self.durations = meter.create_histogram(
            DURATION_METRIC,
            unit="s",
            description="Durations of the receiver calls of signal sends folded by DETAIL_LIMIT.",
        )
        self._contexts: OrderedDict[int, tuple[SignalEvent, Any]] = OrderedDict()
        self._children: OrderedDict[int, list[SignalEvent]] = OrderedDict()
        self._lock = threading.Lock()
        self._unsubscribe: list[Callable[[], None]] = []

    # -- on the sending thread ----------------------------------------------------------

    def sent(self, event: SignalEvent) -> None:
        """A send finished: keep the context it ran in (its span's parent), if top-level (or
        made by a folded send's receiver: a folded send is no span)."""
        if type(event.parent) is not SignalEvent:
            with self._lock:
                self._contexts[id(event)] = (event, otel_context.get_current())
                while len(self._contexts) > MAX_WAITING:
                    self._contexts.popitem(last=False)

    # -- in a drain, off the sending thread ----------------------------------------------

    def recorded(self, event: SignalEvent) -> None:
        if type(event) is not SignalEvent:
            return  # a signal-hygiene finding: no send, no span
        parent = event.parent
        if type(parent) is SignalEvent:
            self._children.setdefault(id(parent), []).append(event)
            while len(self._children) > MAX_WAITING:
                self._children.popitem(last=False)
            return
        with self._lock:
            kept = self._contexts.pop(id(event), None)
        context = kept[1] if kept is not None and kept[0] is event else None
        self._span(event, context)

    def folded(
        self, tally: Tally, sends: Histogram, receivers: list[tuple[Any, Histogram]]
    ) -> None:
        """Calls folded since the last drain, as histogram points: each at its bucket's middle
        (within 0.8% of the call's duration), so every call is counted. Folded sends raised
        nothing (those that did are events)."""
        signal, sender = tally.signal_label, tally.sender_label
        for key, added in receivers:
            attributes = {
                "django.signal": signal,
                "django.signal.sender": sender,
                "code.function.name": receiver_label(key)[0],
            }
            for index, count in added.counts().items():
                seconds = bucket_middle(index) / 1e9
                for _ in range(count):
                    self.durations.record(seconds, attributes)

    def _span(self, event: SignalEvent, context: Any) -> None:
        signal, sender = event.signal_label, event.sender_label
        span = self.tracer.start_span(
            f"{signal.rpartition('.')[2]} {sender}",
            context=context,
            kind=SpanKind.INTERNAL,
            start_time=event.start_ns + WALL_OFFSET_NS,
            attributes={
                "django.signal": signal,
                "django.signal.sender": sender,
                "django.signal.method": event.method,
                "django.signal.receivers": len(event.calls),
                **_task_attributes(event.origin),
            },
        )
        children = sorted(self._children.pop(id(event), []), key=lambda child: child.start_ns)
        calls = sorted(event.calls, key=call_start)
        made = per_call(calls, event.queries, event.nested_queries)
        for (key, is_async, start, duration, _, error), queries in zip(calls, made, strict=True):
            label, location = receiver_label(key)
            path, _, line = location.rpartition(":")
            attributes: dict[str, Any] = {
                "code.function.name": label,
                "django.signal.receiver.async": is_async,
                # Its own queries, and with those of the sends it made (see capture/queries.py).
                "django.signal.receiver.queries": queries.count,
                "django.signal.receiver.queries.total": queries.total_count,
            }
            if path and line.isdigit():
                attributes["code.file.path"] = path
                attributes["code.line.number"] = int(line)
            call = self.tracer.start_span(
                label,
                context=trace.set_span_in_context(span),
                start_time=start + WALL_OFFSET_NS,
                attributes=attributes,
            )
            if error is not None:
                call.add_event(
                    "exception",
                    {
                        "exception.type": error.type,
                        "exception.message": error.message,
                        "exception.stacktrace": error.traceback,
                    },
                    timestamp=start + duration + WALL_OFFSET_NS,
                )
                call.set_status(Status(StatusCode.ERROR, f"{error.type}: {error.message}"))
            inside = [child for child in children if start <= child.start_ns <= start + duration]
            for child in inside:
                children.remove(child)
                self._span(child, trace.set_span_in_context(call))
            call.end(end_time=start + duration + WALL_OFFSET_NS)
        for child in children:  # made outside any receiver's time: under the send itself
            self._span(child, trace.set_span_in_context(span))
        if not event.ok:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=event.start_ns + event.duration_ns + WALL_OFFSET_NS)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        from ..record.recorder import recorder

        self._unsubscribe = [
            recorder.subscribe(self.sent, immediate=True),
            recorder.subscribe(self.recorded),
            recorder.subscribe_folded(self.folded),
        ]

    def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []


exporter: Exporter | None = None


def start() -> Exporter:
    """Export from now on, to the global tracer and meter providers (once)."""
    global exporter
    if exporter is None:
        exporter = Exporter()
        exporter.start()
    return exporter


def _task_attributes(origin: Origin) -> dict[str, Any]:
    """A task run's name and id, on the spans of the sends it caused."""
    if origin.kind != "task":
        return {}
    return {"django.task.name": origin.name, "django.task.id": origin.task_id or ""}
