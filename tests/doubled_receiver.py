"""A module-level signal and receiver that a test connects twice, as a module imported under
two names would (see test_checks.py)."""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal, receiver

kitchen_opened = Signal()


@receiver(kitchen_opened)
def open_windows(sender: Any, **kwargs: Any) -> str:
    return "open"
