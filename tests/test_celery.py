"""Celery task runs as origins, in this process (Celery's eager mode); a real worker runs them
in test_task_workers.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import signals
from django.conf import settings
from django.test import override_settings

from signal_dashboard import checks
from signal_dashboard.capture.context import current_origin
from signal_dashboard.demo.pizzeria.models import Order, Pizza
from signal_dashboard.integrations import celery as celery_runs
from signal_dashboard.record.recorder import recorder
from signal_dashboard.tracing import capture

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """tests/celery_app.py with tasks run where they are called, and the receivers connected."""
    monkeypatch.setenv("SIGNAL_DASHBOARD_TEST_REDIS_URL", "redis://127.0.0.1:1/0")
    from tests import celery_app

    celery_app.app.conf.task_always_eager = True
    celery_runs.install()
    recorder.drain()
    recorder.clear()
    yield celery_app
    celery_runs.uninstall()
    celery_app.app.conf.task_always_eager = False
    recorder.clear()  # the runs' sends are no other test's


@pytest.fixture
def order() -> Order:
    pizza = Pizza.objects.create(name="Capricciosa", price="12.00")
    return Order.objects.create(pizza=pizza, quantity=1, customer_name="Linus")


def runs() -> list[Any]:
    recorder.drain()
    return [origin for origin in recorder.requests if origin.kind == "task"]


def test_a_run_names_its_sends_and_retries_are_runs_of_their_own(eager: Any, order: Order) -> None:
    with capture() as events:
        result = eager.bake.delay(order.pk, fail_first=1)
    assert result.get() == f"baked order #{order.pk}"
    first, second = runs()
    assert (first.name, first.backend, first.attempt) == ("tests.celery_app.bake", "celery", 1)
    assert first.task_status == "RETRY"
    assert first.error == "RuntimeError: the oven is not hot yet"
    assert (second.attempt, second.task_status, second.error) == (2, "SUCCESS", None)
    assert first.task_id == second.task_id == result.id
    saves = events.filter(signal="django.db.models.signals.post_save", sender=Order)
    assert [event.origin for event in saves] == [second]
    assert current_origin.get().kind == "process"


def test_a_failing_task_fails_as_untraced_and_its_run_says_why(eager: Any, order: Order) -> None:
    traced = eager.burn.delay(order.pk)
    with pytest.raises(ValueError, match="the oven burnt"):
        traced.get()
    [run] = runs()
    assert run.task_status == "FAILURE"
    assert run.error == f"ValueError: the oven burnt order #{order.pk}"
    celery_runs.uninstall()
    plain = eager.burn.delay(order.pk)
    assert (plain.status, type(plain.result)) == (traced.status, type(traced.result))
    assert str(plain.result) == str(traced.result)


def test_a_publish_names_the_enqueuer_and_a_retry_does_not(eager: Any) -> None:
    from signal_dashboard.capture.context import Origin

    request = Origin(kind="request", name="POST /orders/1/bake/", method="POST", path="/o/")
    token = current_origin.set(request)
    try:
        signals.before_task_publish.send(
            sender="tests.celery_app.bake", headers={"id": "abc", "task": "x"}
        )
        current_origin.set(Origin(kind="task", name="tests.celery_app.bake", task_id="abc"))
        signals.before_task_publish.send(sender="tests.celery_app.bake", headers={"id": "abc"})
    finally:
        current_origin.reset(token)
    assert request.enqueued == [
        {"name": "tests.celery_app.bake", "task_id": "abc", "backend": "celery"}
    ]
    from signal_dashboard.capture import tasks

    assert tasks.enqueuer_of("abc")["label"] == "POST /o/"  # type: ignore[index]


class _BrokenTask:
    @property
    def name(self) -> str:
        raise RuntimeError("a task whose name cannot be read")


def test_receivers_never_raise(eager: Any) -> None:
    before = celery_runs.failures
    signals.task_prerun.send(sender=None, task_id="t1", task=_BrokenTask())
    assert celery_runs.failures == before + 1
    assert current_origin.get().kind == "process"  # no run began
    signals.before_task_publish.send(sender=None, headers="not a dict")
    assert celery_runs.failures == before + 1  # nothing to note, nothing failed
    assert runs() == []


def test_the_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    real = checks.importlib.util.find_spec
    monkeypatch.setattr(
        checks.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "celery" else real(name, *args),
    )
    with override_settings(SIGNAL_DASHBOARD={**settings.SIGNAL_DASHBOARD, "CELERY": True}):
        messages = checks.check_settings()
    assert [(m.id, m.msg) for m in messages if m.id == "signal_dashboard.E008"] == [
        ("signal_dashboard.E008", "SIGNAL_DASHBOARD['CELERY'] is on but Celery is not installed.")
    ]


def test_a_task_run_eagerly_is_enqueued_by_what_called_it(eager: Any, order: Order) -> None:
    from signal_dashboard.capture.context import Origin

    command = Origin(kind="command", name="bake_all")
    token = current_origin.set(command)
    try:
        result = eager.bake.delay(order.pk, fail_first=1)
    finally:
        current_origin.reset(token)
    first, second = runs()
    assert first.enqueued_by == second.enqueued_by
    assert first.enqueued_by is not None
    assert first.enqueued_by["label"] == "command bake_all"
    assert command.enqueued == [
        {"name": "tests.celery_app.bake", "task_id": result.id, "backend": "celery"}
    ]
