"""Receivers connected for a test's length."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.dispatch import Signal


@contextmanager
def connected(signal: Signal, receiver: Callable[..., Any], **options: Any) -> Iterator[None]:
    """``receiver`` connected to ``signal`` (with ``options``: sender, weak, dispatch_uid)
    inside the block, and disconnected after it whatever happened."""
    signal.connect(receiver, **options)
    try:
        yield
    finally:
        signal.disconnect(
            receiver, sender=options.get("sender"), dispatch_uid=options.get("dispatch_uid")
        )
