"""The pizzeria's background work: a task that bakes an order, run by whichever task backend
the settings name (the in-process one by default, a worker with ``demo --worker``)."""

from __future__ import annotations

import random

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import task  # type: ignore[no-redef]

from .models import Order, Pizza
from .signals import pizza_done

SIZES = ("small", "medium", "large")


@task()
def bake_in_oven(order_id: int) -> str:
    """Bake an order (its save sends pre_save and post_save) and announce it (pizza_done)."""
    order = Order.objects.select_related("pizza").get(pk=order_id)
    order.status = Order.Status.BAKED
    order.save(update_fields=["status"])
    toppings = [topping.name for topping in order.pizza.toppings.all()]
    pizza_done.send_robust(sender=Pizza, toppings=toppings, size=random.choice(SIZES))
    return f"baked order #{order_id}"


@task()
def burn(order_id: int) -> None:
    """A task that fails, as tasks do."""
    raise RuntimeError(f"the oven burnt order #{order_id}")
