"""Task runs as origins: Django's tasks framework (django.tasks, or the django-tasks backport)
with the in-process backend. (Real workers: test_task_workers.py.)"""

from __future__ import annotations

import gc
import importlib
import json
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest
from django.core.management import BaseCommand, call_command

from signal_dashboard.capture.context import PROCESS_ORIGIN, current_origin
from signal_dashboard.demo.pizzeria.models import Order, Pizza
from signal_dashboard.demo.pizzeria.signals import pizza_done
from signal_dashboard.demo.pizzeria.tasks import bake_in_oven, burn, task
from signal_dashboard.record.recorder import recorder
from signal_dashboard.tracing import capture, install, uninstall
from signal_dashboard.web import waterfall
from signal_dashboard.web.reading import request_summary
from signal_dashboard.web.rows import ms
from tests.receiving import connected

pytestmark = pytest.mark.django_db

TASK_SIGNALS = ("task_enqueued", "task_started", "task_finished")


@pytest.fixture(autouse=True)
def _fresh_recorder() -> None:
    recorder.drain()
    recorder.clear()


@pytest.fixture
def order() -> Order:
    pizza = Pizza.objects.create(name="Margherita", price="9.50")
    return Order.objects.create(pizza=pizza, quantity=1, customer_name="Ada")


@contextmanager
def untraced() -> Iterator[None]:
    uninstall()
    try:
        yield
    finally:
        install()


def finished(kind: str) -> list[Any]:
    recorder.drain()
    return [origin for origin in recorder.requests if origin.kind == kind]


def signal_names(events: Any) -> list[str]:
    return [event.signal_label.rpartition(".")[2] for event in events]


def test_a_view_enqueues_a_task_and_its_sends_name_the_task(client: Any, order: Order) -> None:
    with capture() as events:
        response = client.post(f"/pizzeria/orders/{order.pk}/bake-later/")
    assert response.status_code == 302
    [task] = finished("task")
    [request] = [
        o for o in finished("request") if o.path == f"/pizzeria/orders/{order.pk}/bake-later/"
    ]
    assert task.name == "signal_dashboard.demo.pizzeria.tasks.bake_in_oven"
    assert (task.backend, task.attempt, task.task_status) == ("default", 1, "SUCCESSFUL")
    assert task.error is None
    assert task.enqueued_by is not None
    assert task.enqueued_by["label"] == f"POST /pizzeria/orders/{order.pk}/bake-later/"
    assert task.enqueued_by["id"] == request.id
    assert request.enqueued == [{"name": task.name, "task_id": task.task_id, "backend": "default"}]
    own = [event for event in events if event.origin is task]
    # The task's own signals belong to it, as request_started and request_finished to theirs,
    # and so do the sends its body made.
    assert signal_names(own) == [*TASK_SIGNALS[:2], "post_save", "pizza_done", "task_finished"]
    assert task.signal_count == len(own)
    assert not [e for e in events if e.origin is request and e.signal_label.endswith("post_save")]
    summary = request_summary(task)
    assert summary["kind"] == "task"
    assert summary["task_id"] == task.task_id
    assert summary["enqueued_by"] == f"POST /pizzeria/orders/{order.pk}/bake-later/"
    assert current_origin.get().kind == "process"  # the request's end left nothing behind


def test_a_failing_task_fails_as_it_does_untraced(order: Order) -> None:
    traced = burn.enqueue(order.pk)
    [task] = finished("task")
    assert task.task_status == "FAILED"
    assert task.error == f"RuntimeError: the oven burnt order #{order.pk}"
    with untraced():
        plain = burn.enqueue(order.pk)
    assert traced.status == plain.status
    assert [error.exception_class_path for error in traced.errors] == [
        error.exception_class_path for error in plain.errors
    ]
    assert traced.attempts == plain.attempts == 1


def test_results_are_as_untraced(order: Order) -> None:
    traced = bake_in_oven.enqueue(order.pk)
    with untraced():
        plain = bake_in_oven.enqueue(order.pk)
    assert traced.return_value == plain.return_value == f"baked order #{order.pk}"
    assert traced.status == plain.status


def test_a_task_enqueued_by_a_receiver_is_part_of_its_call(order: Order) -> None:
    def bake_it(sender: Any, **kwargs: Any) -> None:
        bake_in_oven.enqueue(order.pk)

    with connected(pizza_done, bake_it), capture() as events:
        pizza_done.send_robust(sender=Pizza, toppings=[], size="small")
    outer = next(event for event in events if event.parent is None)
    nested = [event for event in events if event.parent is outer]
    assert signal_names(nested) == [*TASK_SIGNALS[:2], "post_save", "pizza_done", "task_finished"]
    assert {event.origin.kind for event in events} == {"process"}
    assert finished("task") == []  # the run is the receiver's call


class BakeLater(BaseCommand):
    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("order_id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        bake_in_oven.enqueue(options["order_id"])


def test_a_command_enqueues_a_task(order: Order) -> None:
    call_command(BakeLater(), order.pk)
    [task] = finished("task")
    assert task.enqueued_by is not None
    assert task.enqueued_by["label"] == "command test_tasks"
    [command] = [o for o in finished("command") if o.name == "test_tasks"]
    assert [entry["task_id"] for entry in command.enqueued] == [task.task_id]


def test_nothing_keeps_the_task_result_alive(order: Order) -> None:
    result = bake_in_oven.enqueue(order.pk)
    recorder.drain()
    gc.collect()
    # Only this test's frame holds it (results take no weak references).
    assert [holder for holder in gc.get_referrers(result) if type(holder) is not FrameType] == []


@task()
def send_receipt(order_id: int, api_token: str, copies: int = 1) -> int:
    pizza_done.send_robust(sender=Pizza, toppings=[], size="small")
    return copies


def test_a_tasks_arguments_are_shown_by_name_and_masked_like_kwargs(order: Order) -> None:
    with capture() as events:
        send_receipt.enqueue(order.pk, "tok-123-secret", copies=2)
    [started] = [event for event in events if event.signal_label.endswith("task_started")]
    shown = started.payload["task_result"]
    assert shown["task"] == "tests.test_tasks.send_receipt"
    assert shown["status"] == "RUNNING"
    assert shown["arguments"] == {
        "order_id": order.pk,
        "api_token": "********************",
        "copies": 2,
    }
    assert "tok-123-secret" not in str([event.as_dict() for event in events])


@pytest.fixture
def staff_client(client: Any, django_user_model: Any) -> Any:
    client.force_login(django_user_model.objects.create_user("chef", is_staff=True))
    return client


def test_the_request_and_its_task_link_to_each_other(staff_client: Any, order: Order) -> None:
    staff_client.post(f"/pizzeria/orders/{order.pk}/bake-later/")
    [task] = finished("task")
    [request] = [o for o in finished("request") if o.path.endswith("/bake-later/")]
    page = staff_client.get(f"/signals/requests/{request.id}/").content.decode()
    assert "Tasks it enqueued" in page
    assert f'href="#requests/{task.id}"' in page
    assert f"task {task.task_id} · backend default" in page
    assert f'href="/signals/?task={task.task_id}"' in page
    page = staff_client.get(f"/signals/requests/{task.id}/").content.decode()
    assert "successful · task" in page
    assert "attempt 1" in page
    assert f'enqueued by <a href="#requests/{request.id}">POST /pizzeria/orders/' in page
    assert page.count('class="sd-bar-row sd-bar-send') == task.signal_count
    listing = staff_client.get("/signals/?kind=task").content.decode()
    rows = listing.split('id="sd-request-rows"')[1].split("</tbody>")[0]
    assert rows.count("<tr") == 1
    assert 'data-kind="task"' in rows
    assert "tasks.bake_in_oven" in rows
    assert "by POST /pizzeria/orders/" in rows
    assert "successful" in rows


def test_a_failed_task_is_listed_as_failed(staff_client: Any, order: Order) -> None:
    burn.enqueue(order.pk)
    listing = staff_client.get("/signals/?kind=task&errors_only=on").content.decode()
    rows = listing.split('id="sd-request-rows"')[1].split("</tbody>")[0]
    assert "sd-failed" in rows
    assert f"RuntimeError: the oven burnt order #{order.pk}" in rows


def test_a_waterfalls_timeline_reaches_its_last_send(staff_client: Any, order: Order) -> None:
    staff_client.post(f"/pizzeria/orders/{order.pk}/bake-later/")
    [request] = [o for o in finished("request") if o.path.endswith("/bake-later/")]
    built = waterfall.build(request, list(recorder.events))
    last_end = max(bar.start_ns + bar.duration_ns for bar in built.bars)
    assert built.span_ns == max(last_end, request.duration_ns or 0)
    assert built.span_ns > (request.duration_ns or 0)  # request_finished: sent after the end
    page = staff_client.get(f"/signals/requests/{request.id}/").content.decode()
    assert f"0 \N{EN DASH} {ms(built.span_ns)}" in page


def test_the_caused_by_select_names_each_kind(staff_client: Any) -> None:
    page = staff_client.get("/signals/?kind=process").content.decode()
    assert '<option value="request">requests</option>' in page
    assert '<option value="task">tasks</option>' in page
    assert '<option value="process" selected>the process itself</option>' in page


def test_the_download_of_a_tasks_sends_names_the_task(staff_client: Any, order: Order) -> None:
    result = bake_in_oven.enqueue(order.pk)
    response = staff_client.get(f"/signals/events.ndjson?task={result.id}")
    records = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert [record["signal"].rpartition(".")[2] for record in records] == [
        *TASK_SIGNALS[:2],
        "post_save",
        "pizza_done",
        "task_finished",
    ]
    for record in records:
        assert record["origin"]["kind"] == "task"
        assert record["origin"]["task_id"] == result.id
        assert record["origin"]["name"] == "signal_dashboard.demo.pizzeria.tasks.bake_in_oven"
        assert record["origin"]["enqueued_by"] == f"process {PROCESS_ORIGIN.name}"


def test_a_signal_at_a_dead_task_signals_address_is_no_boundary() -> None:
    from django.conf import settings
    from django.dispatch import Signal

    from signal_dashboard.capture import tasks

    started = importlib.import_module(f"{settings.TASKS_MODULE}.signals").task_started
    assert tasks.boundary_of(started) is not None
    dead, alive = Signal(), Signal()
    tasks.boundaries[id(alive)] = (weakref.ref(dead), tasks.boundary_of(started))  # type: ignore[assignment]
    try:
        # What is at the address now is not what was noted there.
        assert tasks.boundary_of(alive) is None
    finally:
        del tasks.boundaries[id(alive)]


def test_another_processs_run_cannot_be_opened_while_redis_is_unreachable(
    staff_client: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signal_dashboard.backends.redis import history
    from signal_dashboard.integrations.testing.processes import free_port

    monkeypatch.setattr(history._OtherRequests, "read_at", float("-inf"))  # nothing cached

    settings.SIGNAL_DASHBOARD = {
        **settings.SIGNAL_DASHBOARD,
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
    }
    response = staff_client.get("/signals/requests/elsewhere:4242:7/")
    assert response.status_code == 503
    assert response.content.decode().startswith("Redis unreachable: ")
    assert staff_client.get("/signals/?kind=task").status_code == 200  # the list still shows
    assert staff_client.get("/signals/requests/elsewhere:x:7/").status_code == 404


def test_another_processs_waterfall_leaves_its_findings_out() -> None:
    send = {
        "id": "h:1:5",
        "timestamp": 1_000.001,
        "duration_ns": 2_000_000,
        "parent_id": None,
        "signal": "django.db.models.signals.post_save",
        "sender": "pizzeria.Order",
        "ok": True,
        "queries_total": {"count": 1},
        "receivers": [
            {
                "receiver": "shop.on_save",
                "location": "shop.py:3",
                "duration_ns": 1_500_000,
                "start_offset_ns": 250_000,
                "error": None,
                "queries": {"count": 1, "total_count": 1},
            }
        ],
    }
    finding = {"id": "h:1:6", "type": "query_repeated", "timestamp": 1_000.002}
    summary = {"finished_at": 1_000.01, "duration_ns": 10_000_000, "signal_count": 1}
    built = waterfall.build_recorded(summary, [("1-0", send), ("1-1", finding)])
    assert [(bar.kind, bar.label) for bar in built.bars] == [
        ("send", "django.db.models.signals.post_save"),
        ("receiver", "shop.on_save"),
    ]
    receiver = built.bars[1]
    assert receiver.start_ns - built.bars[0].start_ns == 250_000  # as recorded in its send
    assert built.bars[0].history_id == "1-0"
    assert built.missing == 0
