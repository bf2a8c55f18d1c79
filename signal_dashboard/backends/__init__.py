"""Backends: where events and statistics go and come from (see base.Backend).

``backend()`` gives the one the settings choose: the Redis backend when ``REDIS_URL`` is set,
else the local one.
"""

from __future__ import annotations

from ..conf import get_config
from .base import Backend, NotShared
from .local import LocalBackend
from .redis import RedisBackend

__all__ = ["Backend", "LocalBackend", "NotShared", "RedisBackend", "backend"]

_LOCAL = LocalBackend()
_REDIS = RedisBackend()


def backend() -> Backend:
    """The backend the settings choose (read each time: ``get_config()`` is cached)."""
    return _REDIS if get_config()["REDIS_URL"] else _LOCAL
