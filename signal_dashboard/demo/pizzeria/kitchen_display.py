"""The kitchen's order display: a receiver the demo imports twice (see mistakes.py)."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from signal_dashboard.demo.pizzeria.signals import pizza_done


@receiver(pizza_done)
def update_kitchen_display(sender: Any, **kwargs: Any) -> str:
    return "display updated"
