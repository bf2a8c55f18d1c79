"""One button per signal-producing action; every POST redirects back to the home page."""

from __future__ import annotations

import random
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from .models import Order, Pizza, Topping
from .signals import pizza_done

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"
PIZZA_NAMES = ("Margherita", "Marinara", "Diavola", "Funghi", "Capricciosa", "Quattro Formaggi")
CUSTOMERS = ("Ada", "Grace", "Linus", "Guido", "Barbara", "Ken", "Margaret")
SIZES = ("small", "medium", "large")
BATCH_SIZE = 3
SHOWN_PIZZAS = 8
SHOWN_ORDERS = 12


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    pizzas = Pizza.objects.prefetch_related("toppings").order_by("-pk")[:SHOWN_PIZZAS]
    orders = Order.objects.select_related("pizza").order_by("-pk")[:SHOWN_ORDERS]
    context = {"pizzas": pizzas, "orders": orders, "sizes": SIZES, "Status": Order.Status}
    return render(request, "pizzeria/home.html", context)


@require_POST
def create_pizza(request: HttpRequest) -> HttpResponse:
    pizza = _new_pizza()
    messages.success(request, f"Created {pizza.name} with {pizza.toppings.count()} toppings.")
    return redirect("pizzeria:home")


@require_POST
def place_order(request: HttpRequest, pk: int) -> HttpResponse:
    order = _new_order(get_object_or_404(Pizza, pk=pk))
    messages.success(request, f"Placed {order}.")
    return redirect("pizzeria:home")


@require_POST
def bake_order(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order.objects.select_related("pizza"), pk=pk)
    _set_status(order, Order.Status.BAKED)
    # An unknown or missing size is the kitchen's choice.
    size = request.POST.get("size")
    _announce(request, order.pizza, size if size in SIZES else random.choice(SIZES))
    return redirect("pizzeria:home")


@require_POST
def bake_later(request: HttpRequest, pk: int) -> HttpResponse:
    """Enqueue the order's baking as a task: the task backend runs it, here or in a worker."""
    from .tasks import bake_in_oven

    order = get_object_or_404(Order, pk=pk)
    result = bake_in_oven.enqueue(order.pk)
    messages.success(request, f"Enqueued baking order #{order.pk} (task {result.id}).")
    return redirect("pizzeria:home")


@require_POST
def deliver_order(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order, pk=pk)
    _set_status(order, Order.Status.DELIVERED)
    messages.success(request, f"Delivered order #{order.pk}.")
    return redirect("pizzeria:home")


@require_POST
def delete_order(request: HttpRequest, pk: int) -> HttpResponse:
    get_object_or_404(Order, pk=pk).delete()
    messages.success(request, f"Deleted order #{pk}.")
    return redirect("pizzeria:home")


@require_POST
def log_in(request: HttpRequest) -> HttpResponse:
    user = authenticate(request, username=DEMO_USERNAME, password=DEMO_PASSWORD)
    if user is None:
        messages.error(request, "No demo user: run `python manage.py demo` to create it.")
    else:
        login(request, user)
        messages.success(request, f"Logged in as {user}.")
        if getattr(settings, "PIZZERIA_SIGNAL_MISTAKES", False):
            from . import mistakes

            mistakes.connect_in_the_login_view()
    return redirect("pizzeria:home")


@require_POST
def log_out(request: HttpRequest) -> HttpResponse:
    logout(request)
    messages.success(request, "Logged out.")
    return redirect("pizzeria:home")


@require_POST
def failed_login(request: HttpRequest) -> HttpResponse:
    authenticate(request, username=DEMO_USERNAME, password="not-the-password")
    messages.warning(request, "Login failed, as intended.")
    return redirect("pizzeria:home")


@require_POST
@transaction.atomic
def bake_batch(request: HttpRequest) -> HttpResponse:
    """The heaviest view: a new pizza, a batch of orders for it, all baked, one ``pizza_done``."""
    pizza = _new_pizza()
    for _ in range(BATCH_SIZE):
        _set_status(_new_order(pizza), Order.Status.BAKED)
    _announce(request, pizza, random.choice(SIZES))
    return redirect("pizzeria:home")


def _new_pizza() -> Pizza:
    price = Decimal(random.randrange(750, 1500, 50)) / 100
    pizza = Pizza.objects.create(name=random.choice(PIZZA_NAMES), price=price)
    toppings = list(Topping.objects.all())
    pizza.toppings.set(random.sample(toppings, k=min(len(toppings), random.randint(2, 4))))
    return pizza


def _new_order(pizza: Pizza) -> Order:
    return Order.objects.create(
        pizza=pizza, quantity=random.randint(1, 3), customer_name=random.choice(CUSTOMERS)
    )


def _set_status(order: Order, status: Order.Status) -> None:
    order.status = status
    order.save(update_fields=["status"])


def _announce(request: HttpRequest, pizza: Pizza, size: str) -> None:
    """Send ``pizza_done`` robustly and show what each receiver made of it."""
    toppings = [topping.name for topping in pizza.toppings.all()]
    for receiver, result in pizza_done.send_robust(sender=Pizza, toppings=toppings, size=size):
        name = getattr(receiver, "__name__", repr(receiver))
        if isinstance(result, Exception):
            messages.error(request, f"{name} raised {result!r}")
        else:
            messages.info(request, f"{name}: {result}")
