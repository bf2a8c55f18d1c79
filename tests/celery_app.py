"""A Celery app for the test project (tests.settings_redis), its broker the tests' Redis.

Run by tests/test_task_workers.py as a real worker process (``celery -A tests.celery_app
worker``); the Daphne server's ``celery/bake/<pk>/`` view calls ``bake.delay()``.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings_redis")

app = Celery("tests")
broker = os.environ["SIGNAL_DASHBOARD_TEST_REDIS_URL"]
app.conf.update(
    broker_url=broker,
    result_backend=broker,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_serializer="json",
)


@app.task(bind=True, name="tests.celery_app.bake", max_retries=3)
def bake(self: object, order_id: int, fail_first: int = 0) -> str:
    """Bake an order (the demo's task body): saves it, sends pizza_done. Retries itself
    ``fail_first`` times first, as a task whose oven is not hot yet would."""
    from signal_dashboard.demo.pizzeria.tasks import bake_in_oven

    request = self.request  # type: ignore[attr-defined]
    if request.retries < fail_first:
        raise self.retry(exc=RuntimeError("the oven is not hot yet"), countdown=0)  # type: ignore[attr-defined]
    return bake_in_oven.call(order_id)


@app.task(name="tests.celery_app.burn")
def burn(order_id: int) -> None:
    raise ValueError(f"the oven burnt order #{order_id}")
