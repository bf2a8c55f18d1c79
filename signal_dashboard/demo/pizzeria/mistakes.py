"""Three signal mistakes the demo makes on purpose (``PIZZERIA_SIGNAL_MISTAKES`` in its
settings), so that the dashboard's signal hygiene has something to show within seconds of the
demo starting: a receiver that gets lost, one connected twice, and one connected in a view."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.utils import inspect as django_inspect

from . import signals


def connect_a_receiver_that_gets_lost() -> None:
    """A local function, held weakly by the signal (the default): lost once this returns."""

    def tell_the_waiter(sender: Any, **kwargs: Any) -> None:
        return None

    signals.pizza_done.connect(tell_the_waiter)
    # With DEBUG on, connect() checks the receiver's signature, and Django keeps the last 512
    # functions it checked (django.utils.inspect): the loss would show once they are pushed
    # out. The demo lets go at once, as a project with DEBUG off does.
    forget_checked = getattr(django_inspect, "_get_func_parameters", None)
    if forget_checked is not None:
        forget_checked.cache_clear()


def import_the_kitchen_display_twice() -> None:
    """kitchen_display.py imported under its own name and again as a top-level module, as a
    project directory on ``sys.path`` makes happen: its receiver is connected twice."""
    from . import kitchen_display  # noqa: F401  (connects its receiver)

    path = Path(__file__).with_name("kitchen_display.py")
    spec = importlib.util.spec_from_file_location("kitchen_display", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["kitchen_display"] = module
    spec.loader.exec_module(module)


def greet_user(sender: Any, user: Any, **kwargs: Any) -> None:
    return None


def connect_in_the_login_view() -> None:
    """What the login view does on every login: a connect() while a request runs."""
    user_logged_in.connect(greet_user, weak=False)
