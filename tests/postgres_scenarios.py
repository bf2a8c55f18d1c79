"""Queries counted per receiver on a real PostgreSQL, in a process of its own.

Run by tests/test_queries.py as ``python -m tests.postgres_scenarios`` with
``DJANGO_SETTINGS_MODULE=tests.settings_postgres``; prints what it saw as one JSON object.
"""

from __future__ import annotations

import json
import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings_postgres")
django.setup()

from asgiref.sync import async_to_sync  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models.signals import post_init, post_save  # noqa: E402
from django.dispatch import Signal  # noqa: E402
from django.test import AsyncClient  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

from signal_dashboard import tracing  # noqa: E402
from signal_dashboard.demo.pizzeria.models import Pizza, Topping  # noqa: E402
from signal_dashboard.record.recorder import recorder  # noqa: E402

SECRET = "hunter2-never-shown"
stocktake = Signal()


def count_pizzas(sender: Any, instance: Topping, **kwargs: Any) -> None:
    Pizza.objects.count()
    Pizza.objects.filter(name=SECRET).exists()


def walk_the_toppings(sender: Any, **kwargs: Any) -> list[str]:
    """Reads every topping through a server-side cursor, a few rows at a time."""
    return [topping.name for topping in Topping.objects.order_by("name").iterator(chunk_size=2)]


def look_up_on_init(sender: Any, instance: Topping, **kwargs: Any) -> None:
    Pizza.objects.exists()


def own_queries(event: Any) -> list[int]:
    return [call.queries.count for call in event.receivers]


def main() -> dict[str, Any]:
    setup_test_environment()  # the test client's host allowed, as under a test runner
    call_command("migrate", verbosity=0)
    seen: dict[str, Any] = {"vendor": connection.vendor}
    post_save.connect(count_pizzas, sender=Topping)
    stocktake.connect(walk_the_toppings)

    def scenario() -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            for name in ("basil", "oregano", "chili", "rocket", "olives"):
                Topping.objects.create(name=name)
            Topping.objects.all().delete()
        return [query["sql"].split(" WHERE ")[0] for query in captured.captured_queries]

    tracing.uninstall()
    try:
        untraced = scenario()
    finally:
        tracing.install()
    with tracing.capture() as events:
        traced = scenario()
        for name in ("basil", "oregano", "chili", "rocket", "olives"):
            Topping.objects.create(name=name)
        (walked,) = stocktake.send(sender=Topping)
        # Iterating a server-side cursor while each row's post_init receiver queries.
        post_init.connect(look_up_on_init, sender=Topping)
        try:
            names = [topping.name for topping in Topping.objects.iterator(chunk_size=2)]
        finally:
            post_init.disconnect(look_up_on_init, sender=Topping)
    seen["same_queries"] = traced == untraced
    seen["saves"] = [own_queries(e) for e in events if e.signal is post_save][:1]
    (walk,) = [event for event in events if event.signal is stocktake]
    seen["walked"] = walked[1]
    seen["walk_queries"] = own_queries(walk)
    seen["iterated"] = sorted(names)
    seen["init_queries"] = [own_queries(e) for e in events if e.signal is post_init][-5:]
    seen["secret_shown"] = SECRET in json.dumps([event.as_dict() for event in events])

    recorder.clear()
    response = async_to_sync(AsyncClient().get)("/toppings/async-save/?name=pepper")
    recorder.drain()
    (request,) = [origin for origin in recorder.requests if origin.path == "/toppings/async-save/"]
    seen["async_view"] = {
        "status": response.status_code,
        "queries": request.query_count,
        "in_receivers": request.receiver_query_count,
    }
    return seen


if __name__ == "__main__":
    print(json.dumps(main()))
