"""URLs of the test project: a few views that send signals, and the dashboard."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from django.db.models.signals import pre_save
from django.dispatch import Signal
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import URLPattern, URLResolver, include, path

from signal_dashboard.demo.pizzeria.models import Topping


def save_topping(request: HttpRequest) -> HttpResponse:
    if request.GET.get("members_only") and not request.user.is_authenticated:
        return HttpResponse(status=403)
    topping = Topping.objects.create(name=request.GET.get("name", "basil"))
    return HttpResponse(f"saved {topping.pk}")


async def async_save_topping(request: HttpRequest) -> HttpResponse:
    topping = await Topping.objects.acreate(name=request.GET.get("name", "oregano"))
    return HttpResponse(f"saved {topping.pk}")


def bake_later(request: HttpRequest, pk: int) -> HttpResponse:
    """Enqueue an order's baking with the settings' task backend; answers the task's id."""
    from signal_dashboard.demo.pizzeria.tasks import bake_in_oven

    return HttpResponse(bake_in_oven.enqueue(pk).id)


def celery_bake(request: HttpRequest, pk: int) -> HttpResponse:
    """Hand an order's baking to a Celery worker (``?fail_first=N``: it retries N times)."""
    from tests.celery_app import bake

    fail_first = int(request.GET.get("fail_first", 0))
    return HttpResponse(bake.delay(pk, fail_first=fail_first).id)


pizza_ordered = Signal()
"""Sent by the ``order/`` view; tests connect receivers to it (sender: the view's name)."""


def order_pizza(request: HttpRequest) -> HttpResponse:
    pizza_ordered.send(sender="order_pizza", name=request.GET.get("name", "margherita"))
    return HttpResponse("ordered")


def stream_toppings(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[str]:
        yield "saving "
        yield f"saved {Topping.objects.create(name='streamed').pk}"

    return StreamingHttpResponse(chunks())


async def astream_toppings(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[str]:
        yield "saving "
        yield f"saved {(await Topping.objects.acreate(name='streamed')).pk}"

    return StreamingHttpResponse(chunks())


kitchen_inventory_recounted_after_the_evening_delivery = Signal()
"""Sent by the ``long/`` view, with a long sender, to a receiver with a long name that raises
with a long message: labels wider than any column."""


def reconcile_the_walk_in_refrigerator_inventory_with_the_supplier_invoice(
    sender: object, **kwargs: object
) -> None:
    raise ValueError("the supplier invoice lists " + ", ".join(["forty crates of tomatoes"] * 8))


kitchen_inventory_recounted_after_the_evening_delivery.connect(
    reconcile_the_walk_in_refrigerator_inventory_with_the_supplier_invoice
)


def long_labels(request: HttpRequest) -> HttpResponse:
    kitchen_inventory_recounted_after_the_evening_delivery.send_robust(
        sender="central_kitchen.deliveries.EveningDeliveryFromTheSupplierWarehouse"
    )
    return HttpResponse("counted")


def on_every_order(sender: object, **kwargs: object) -> None:
    """Connected by the ``connect/`` view, while it runs: what a request must not do."""


def connect_in_view(request: HttpRequest) -> HttpResponse:
    pizza_ordered.connect(on_every_order, weak=False)
    return HttpResponse("connected")


def connect_for_the_request(request: HttpRequest) -> HttpResponse:
    """As a middleware does that connects a receiver for the request's user: connected, then
    disconnected before the request ends."""
    pre_save.connect(on_every_order, dispatch_uid=("for the request", id(request)))
    try:
        Topping.objects.create(name=f"basil {Topping.objects.count()}")
    finally:
        pre_save.disconnect(dispatch_uid=("for the request", id(request)))
    return HttpResponse("ok")


def lose_a_receiver(request: HttpRequest) -> HttpResponse:
    """Connects a local function, held weakly: it is lost once the view returns."""

    def forgotten_receiver(sender: object, **kwargs: object) -> None:
        return None

    pizza_ordered.connect(forgotten_receiver)
    return HttpResponse("connected, for now")


def double_a_receiver(request: HttpRequest) -> HttpResponse:
    """Imports tests/doubled_receiver.py under a second name: its receiver is connected twice."""
    import importlib.util
    import sys
    from pathlib import Path

    from tests import doubled_receiver

    if "tests_doubled_by_view" not in sys.modules:
        path = Path(doubled_receiver.__file__)
        spec = importlib.util.spec_from_file_location("tests_doubled_by_view", path)
        assert spec is not None
        assert spec.loader is not None
        copy = importlib.util.module_from_spec(spec)
        sys.modules["tests_doubled_by_view"] = copy
        spec.loader.exec_module(copy)
        doubled_receiver.kitchen_opened.connect(copy.open_windows, weak=False)
    doubled_receiver.kitchen_opened.send(sender="view")
    return HttpResponse("doubled")


def miss_a_disconnect(request: HttpRequest) -> HttpResponse:
    pizza_ordered.disconnect(dispatch_uid="not-connected")
    return HttpResponse("missed")


def broken(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("view failed")


def toppings_page(request: HttpRequest) -> HttpResponse:
    return render(request, "tests/toppings.html", {"toppings": Topping.objects.all()})


urlpatterns: list[URLPattern | URLResolver] = [
    path("toppings/save/", save_topping),
    path("toppings/async-save/", async_save_topping),
    path("toppings/", toppings_page),
    path("toppings/stream/", stream_toppings),
    path("toppings/async-stream/", astream_toppings),
    path("broken/", broken),
    path("order/", order_pizza),
    path("long/", long_labels),
    path("connect/", connect_in_view),
    path("connect-for-the-request/", connect_for_the_request),
    path("lose/", lose_a_receiver),
    path("double/", double_a_receiver),
    path("miss/", miss_a_disconnect),
    path("tasks/bake/<int:pk>/", bake_later),
    path("celery/bake/<int:pk>/", celery_bake),
    path("pizzeria/", include("signal_dashboard.demo.pizzeria.urls")),
    path("signals/", include("signal_dashboard.urls")),
]
