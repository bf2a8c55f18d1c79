"""How signals are named: by the module that defines them, whoever imports them."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest
from django.db.models import signals as model_signals

from signal_dashboard.capture.labels import _find_signal_path
from tests import signal_home


@pytest.fixture
def blog_signals() -> Iterator[types.ModuleType]:
    """A project's ``blog/signals.py`` that imports Django's signals and ours: a module named
    "signals", with a shorter name than either defining module."""
    module = types.ModuleType("blog.signals")
    module.post_save = model_signals.post_save  # type: ignore[attr-defined]
    module.order_placed = signal_home.order_placed  # type: ignore[attr-defined]
    sys.modules["blog.signals"] = module
    yield module
    del sys.modules["blog.signals"]


def test_djangos_signals_are_named_by_djangos_module_when_a_project_module_imports_them(
    blog_signals: types.ModuleType,
) -> None:
    assert _find_signal_path(model_signals.post_save) == "django.db.models.signals.post_save"


def test_a_projects_signal_is_named_by_the_module_that_defines_it(
    blog_signals: types.ModuleType,
) -> None:
    assert _find_signal_path(signal_home.order_placed) == "tests.signal_home.order_placed"


def test_a_signal_no_module_defines_is_named_by_a_module_that_holds_it() -> None:
    from django.dispatch import Signal

    made_at_run_time = Signal()
    holder = types.ModuleType("kitchen.runtime")
    holder.made = made_at_run_time  # type: ignore[attr-defined]
    sys.modules["kitchen.runtime"] = holder
    try:
        assert _find_signal_path(made_at_run_time) == "kitchen.runtime.made"
    finally:
        del sys.modules["kitchen.runtime"]
