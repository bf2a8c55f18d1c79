"""The pizzeria's own signal and its receivers: a realistic mix of fast, slow, failing and async.

The receivers are connected in ``PizzeriaConfig.ready()``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from typing import Any

from django.dispatch import Signal

from .models import Order, Pizza

logger = logging.getLogger(__name__)

pizza_done = Signal()
"""Sent when an order comes out of the oven (sender: ``Pizza``).

Keyword arguments: ``toppings``, a list of topping names, and ``size``, one of "small",
"medium" or "large".
"""

# How often each auth event happened in this process, by name.
auth_events: Counter[str] = Counter()


def order_saved(sender: type[Order], instance: Order, created: bool, **kwargs: Any) -> None:
    """Log new orders and status changes: the fast receiver."""
    verb = "placed" if created else instance.status
    logger.info("order #%s %s", instance.pk, verb)


def refresh_menu_board(sender: type[Pizza], instance: Pizza, **kwargs: Any) -> None:
    """Re-render the menu board after a pizza changes: the slow receiver."""
    time.sleep(random.uniform(0.02, 0.2))  # stands in for a call to the shop's display service


def toppings_changed(
    sender: type[Any], instance: Pizza, action: str, pk_set: set[int] | None, **kwargs: Any
) -> None:
    """Log toppings added to a pizza."""
    if action == "post_add":
        logger.info("pizza #%s: %d topping(s) added", instance.pk, len(pk_set or ()))


def order_deleting(sender: type[Order], instance: Order, **kwargs: Any) -> None:
    """Log an order before it disappears."""
    logger.info("order #%s for %s cancelled", instance.pk, instance.customer_name)


# Tickets print_kitchen_tickets() reprints: the latest orders'.
TICKETS = 12


def print_kitchen_tickets(sender: type[Pizza], **kwargs: Any) -> None:
    """Reprint the latest orders' tickets: the receiver with an N+1. Each order's pizza is
    loaded on its own, a query per ticket; ``select_related("pizza")`` would load them with the
    orders, in one."""
    for order in Order.objects.order_by("-pk")[:TICKETS]:
        logger.info("ticket: order #%s, %s for %s", order.pk, order.pizza.name, order.customer_name)


def check_oven(sender: type[Pizza], **kwargs: Any) -> None:
    """Always fails, so the dashboard has an error to show (``pizza_done`` is sent robustly)."""
    raise RuntimeError("oven on fire")


async def announce_pizza(
    sender: type[Pizza], *, toppings: list[str], size: str, **kwargs: Any
) -> str:
    """Tell the customer their pizza is ready: the async receiver."""
    await asyncio.sleep(0.005)  # stands in for a push notification
    return f"{size} pizza with {len(toppings)} toppings is ready"


def count_login(sender: type[Any], **kwargs: Any) -> None:
    auth_events["logged_in"] += 1


def count_logout(sender: type[Any] | None, **kwargs: Any) -> None:
    auth_events["logged_out"] += 1


def log_login_failed(sender: str, credentials: dict[str, Any], **kwargs: Any) -> None:
    auth_events["login_failed"] += 1
    # Django has already masked the password in ``credentials``.
    logger.info("failed login for %r", credentials.get("username"))
