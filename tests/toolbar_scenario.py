"""django-debug-toolbar's SQL panel and signal_dashboard, both counting one request's queries,
in a process of its own (settings: tests/settings_toolbar.py). Prints one JSON object."""

from __future__ import annotations

import json
import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings_toolbar")
django.setup()

from debug_toolbar.store import get_store  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.models.signals import post_save  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from signal_dashboard.demo.pizzeria.models import Pizza, Topping  # noqa: E402
from signal_dashboard.record.recorder import recorder  # noqa: E402


def count_pizzas(sender: Any, instance: Topping, **kwargs: Any) -> None:
    Pizza.objects.count()
    Pizza.objects.filter(name="margherita").exists()


def main() -> dict[str, Any]:
    setup_test_environment()
    call_command("migrate", verbosity=0)
    post_save.connect(count_pizzas, sender=Topping)
    recorder.clear()
    response = Client().get("/toppings/save/?name=basil")
    recorder.drain()
    (request,) = [origin for origin in recorder.requests if origin.path == "/toppings/save/"]
    (request_id,) = list(get_store().request_ids())
    panel = get_store().panel(request_id, "SQLPanel")
    return {
        "status": response.status_code,
        "toolbar_queries": len(panel.get("queries", [])),
        "toolbar_sql": [query["raw_sql"] for query in panel.get("queries", [])],
        "our_queries": request.query_count,
        "in_receivers": request.receiver_query_count,
    }


if __name__ == "__main__":
    print(json.dumps(main()))
