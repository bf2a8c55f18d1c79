"""Who may watch the dashboard: active staff users, or what the ACCESS setting says."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.utils.module_loading import import_string

from .conf import get_config


def can_view(user: Any) -> bool:
    """Whether ``user`` may see the dashboard and its stream."""
    if user is None or not user.is_authenticated:
        return False
    check = get_config()["ACCESS"]
    if check is None:
        return bool(user.is_active and user.is_staff)
    return bool(_load(check)(user))


@functools.cache
def _load(path: str) -> Callable[[Any], bool]:
    return import_string(path)
