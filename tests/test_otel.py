"""OpenTelemetry export: spans under the request's span, and folded sends as a histogram."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from django.dispatch import Signal
from django.test import Client
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from signal_dashboard import checks
from signal_dashboard.demo.pizzeria.models import Topping
from signal_dashboard.integrations import otel
from signal_dashboard.integrations.otel import DURATION_METRIC, Exporter
from signal_dashboard.integrations.testing.processes import free_port
from signal_dashboard.record.recorder import recorder
from tests.urls import pizza_ordered

slice_ordered = Signal()


def slice_it(sender: Any, **kwargs: Any) -> str:
    slice_ordered.send_robust(sender="kitchen", slices=8)
    return "sliced"


def burnt(sender: Any, **kwargs: Any) -> None:
    raise ValueError("burnt crust")


async def count_slices(sender: Any, **kwargs: Any) -> int:
    return 8


@pytest.fixture
def receivers() -> Iterator[None]:
    pizza_ordered.connect(slice_it)
    slice_ordered.connect(burnt)
    slice_ordered.connect(count_slices)
    yield
    pizza_ordered.disconnect(slice_it)
    slice_ordered.disconnect(burnt)
    slice_ordered.disconnect(count_slices)


@pytest.fixture
def exported() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader, TracerProvider]]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    exporter = Exporter(tracer_provider, MeterProvider(metric_readers=[metrics]))
    exporter.start()
    yield spans, metrics, tracer_provider
    exporter.stop()


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    [span] = [span for span in spans if span.name == name]
    return span


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


@pytest.mark.django_db
def test_sends_nest_under_the_request_span_with_their_receivers(
    exported: tuple[InMemorySpanExporter, InMemoryMetricReader, TracerProvider], receivers: None
) -> None:
    spans, _, tracer_provider = exported
    DjangoInstrumentor().instrument(tracer_provider=tracer_provider)
    try:
        assert Client().get("/order/?name=margherita").status_code == 200
    finally:
        DjangoInstrumentor().uninstrument()
    recorder.drain()
    finished = spans.get_finished_spans()
    [request] = [span for span in finished if span.kind == SpanKind.SERVER]
    send = by_name(finished, "pizza_ordered order_pizza")
    assert parent_of(send) == request.context.span_id
    assert send.context.trace_id == request.context.trace_id
    assert send.attributes["django.signal"] == "tests.urls.pizza_ordered"
    assert send.attributes["django.signal.method"] == "send"
    receiver = by_name(finished, "tests.test_otel.slice_it")
    assert parent_of(receiver) == send.context.span_id
    assert receiver.attributes["code.file.path"].endswith("tests/test_otel.py")
    assert isinstance(receiver.attributes["code.line.number"], int)
    # The send made inside the receiver is the receiver's child, with its own receivers.
    nested = by_name(finished, "slice_ordered kitchen")
    assert parent_of(nested) == receiver.context.span_id
    assert nested.attributes["django.signal.method"] == "send_robust"
    failing = by_name(finished, "tests.test_otel.burnt")
    assert parent_of(failing) == nested.context.span_id
    assert failing.status.status_code == StatusCode.ERROR
    [exception] = failing.events
    assert exception.name == "exception"
    assert exception.attributes["exception.type"] == "builtins.ValueError"
    assert exception.attributes["exception.message"] == "burnt crust"
    assert "raise ValueError" in exception.attributes["exception.stacktrace"]
    asynchronous = by_name(finished, "tests.test_otel.count_slices")
    assert parent_of(asynchronous) == nested.context.span_id
    assert asynchronous.attributes["django.signal.receiver.async"] is True
    assert nested.status.status_code == StatusCode.ERROR  # a receiver of it failed
    # Times are the recorded ones: children inside their parents.
    assert send.start_time <= receiver.start_time <= nested.start_time
    assert nested.end_time <= receiver.end_time <= send.end_time <= request.end_time


def test_folded_sends_are_a_histogram_not_spans(
    exported: tuple[InMemorySpanExporter, InMemoryMetricReader, TracerProvider],
    receivers: None,
    settings: Any,
) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "DETAIL_LIMIT": 0}
    spans, metrics, _ = exported
    with pytest.raises(ValueError, match="burnt crust"):
        slice_ordered.send(sender="oven")
    recorder.drain()
    # An outlier (a receiver raised) is kept in full: a span. Every other send is folded.
    assert "slice_ordered oven" in {span.name for span in spans.get_finished_spans()}
    spans.clear()
    pizza_ordered.disconnect(slice_it)
    pizza_ordered.connect(count_slices)
    try:
        for _ in range(7):
            pizza_ordered.send(sender="till")
        recorder.drain()
    finally:
        pizza_ordered.disconnect(count_slices)
        pizza_ordered.connect(slice_it)
    assert spans.get_finished_spans() == ()
    data = metrics.get_metrics_data()
    [metric] = [
        metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == DURATION_METRIC
    ]
    points = {
        point.attributes["code.function.name"]: point.count for point in metric.data.data_points
    }
    assert points["tests.test_otel.count_slices"] == 7
    assert metric.unit == "s"


class _Collector(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_spans_reach_an_otlp_http_collector(receivers: None) -> None:
    server = HTTPServer(("127.0.0.1", free_port()), _Collector)
    _Collector.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    tracer_provider = TracerProvider()
    endpoint = f"http://127.0.0.1:{server.server_port}/v1/traces"
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    exporter = Exporter(tracer_provider, MeterProvider())
    exporter.start()
    try:
        with tracer_provider.get_tracer("test").start_as_current_span("checkout") as outer:
            pizza_ordered.send(sender="order_pizza", name="margherita")
        recorder.drain()
        tracer_provider.force_flush()
    finally:
        exporter.stop()
        server.shutdown()
    received = {}
    for body in _Collector.bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    received[span.name] = span
    send = received["pizza_ordered order_pizza"]
    assert send.parent_span_id == outer.get_span_context().span_id.to_bytes(8, "big")
    receiver = received["tests.test_otel.slice_it"]
    assert receiver.parent_span_id == send.span_id
    assert received["tests.test_otel.burnt"].status.code == 2  # STATUS_CODE_ERROR
    attributes = {item.key: item.value.string_value for item in send.attributes}
    assert attributes["django.signal.sender"] == "order_pizza"


def test_off_by_default_and_the_extra_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert otel.exporter is None  # the setting is off in the test project
    assert trace.get_tracer_provider() is not None
    real = checks.importlib.util.find_spec
    monkeypatch.setattr(
        checks.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "opentelemetry.sdk" else real(name, *args),
    )
    with override_config(OPENTELEMETRY=True):
        messages = checks.check_settings()
    assert [(m.id, m.msg, m.hint) for m in messages if m.id == "signal_dashboard.E007"] == [
        (
            "signal_dashboard.E007",
            "SIGNAL_DASHBOARD['OPENTELEMETRY'] is on but the OpenTelemetry SDK is not installed.",
            "pip install 'signal-dashboard[opentelemetry]'",
        )
    ]


def override_config(**values: Any) -> Any:
    from django.conf import settings
    from django.test import override_settings

    return override_settings(SIGNAL_DASHBOARD={**settings.SIGNAL_DASHBOARD, **values})


@pytest.mark.django_db
def test_a_receiver_span_says_how_many_queries_it_ran(
    exported: tuple[InMemorySpanExporter, InMemoryMetricReader, TracerProvider],
) -> None:
    spans, _, _ = exported

    def count_toppings(sender: Any, **kwargs: Any) -> None:
        Topping.objects.count()
        slice_ordered.send(sender="kitchen")

    def count_again(sender: Any, **kwargs: Any) -> None:
        Topping.objects.count()

    pizza_ordered.connect(count_toppings)
    slice_ordered.connect(count_again)
    try:
        assert Client().get("/order/?name=margherita").status_code == 200
    finally:
        pizza_ordered.disconnect(count_toppings)
        slice_ordered.disconnect(count_again)
    recorder.drain()
    finished = spans.get_finished_spans()
    outer = by_name(finished, f"{__name__}.{count_toppings.__qualname__}")
    inner = by_name(finished, f"{__name__}.{count_again.__qualname__}")
    assert outer.attributes["django.signal.receiver.queries"] == 1
    assert outer.attributes["django.signal.receiver.queries.total"] == 2
    assert inner.attributes["django.signal.receiver.queries"] == 1
    assert inner.attributes["django.signal.receiver.queries.total"] == 1


@pytest.mark.django_db
def test_a_task_runs_sends_are_spans_under_the_current_span_naming_the_task(
    exported: tuple[InMemorySpanExporter, InMemoryMetricReader, TracerProvider],
) -> None:
    from signal_dashboard.demo.pizzeria.models import Order, Pizza
    from signal_dashboard.demo.pizzeria.tasks import bake_in_oven

    spans, _, tracer_provider = exported
    pizza = Pizza.objects.create(name="Funghi", price="10.00")
    order = Order.objects.create(pizza=pizza, quantity=1, customer_name="Grace")
    tracer = tracer_provider.get_tracer("a task runner")
    with tracer.start_as_current_span("run bake_in_oven") as run:
        result = bake_in_oven.enqueue(order.pk)
    recorder.drain()
    finished = spans.get_finished_spans()
    done = by_name(finished, "pizza_done pizzeria.Pizza")
    assert parent_of(done) == run.get_span_context().span_id
    assert done.attributes["django.task.name"] == (
        "signal_dashboard.demo.pizzeria.tasks.bake_in_oven"
    )
    assert done.attributes["django.task.id"] == result.id
    outside = by_name(finished, "run bake_in_oven")
    assert "django.task.name" not in outside.attributes
