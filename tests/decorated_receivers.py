"""Receivers behind one decorator, as projects write them to switch receivers off during a
fixture load: different functions that share the decorator's wrapper code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.dispatch import Signal

pizza_baked = Signal()


def skip_raw(receiver: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(receiver)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("raw"):
            return None
        return receiver(*args, **kwargs)

    return wrapper


def quietly(receiver: Callable[..., Any]) -> Callable[..., Any]:
    """The same, without functools.wraps: the function it wraps is in its closure."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return receiver(*args, **kwargs)

    return wrapper


@skip_raw
def box_it(sender: Any, **kwargs: Any) -> str:
    return "boxed"


@skip_raw
def slice_it(sender: Any, **kwargs: Any) -> str:
    return "sliced"


@quietly
def serve_it(sender: Any, **kwargs: Any) -> str:
    return "served"


@quietly
def plate_it(sender: Any, **kwargs: Any) -> str:
    return "plated"
