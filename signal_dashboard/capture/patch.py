"""install()/uninstall(): the class-level patches, made once and undone exactly.

``Signal``'s four send methods (send.py), its ``connect()`` and ``disconnect()`` (hygiene.py),
``BaseCommand.execute`` and ``unittest.TestResult``'s ``startTest()`` and ``stopTest()`` (a
command's origin and a test's, origins.py) and the database cursors' query count
(queries.py). Each is replaced on the class, so every instance is traced, whenever it was made.
"""

from __future__ import annotations

import functools
import unittest
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand
from django.dispatch import Signal

from .. import conf
from . import hygiene, queries, tasks
from .origins import make_execute, make_start_test, make_stop_test
from .send import make_asend, make_send, ran_as_traced

# The original methods, set while tracing is installed.
_originals: dict[tuple[type, str], Callable[..., Any]] = {}

Patches = tuple[tuple[type, str, Callable[[], Callable[..., Any]]], ...]

# Signal hygiene (hygiene.py): connect() and disconnect() as Django's, then noted.
_WATCH: Patches = tuple(
    (Signal, name, functools.partial(make, Signal.__dict__[name])) for name, make in hygiene.PATCHES
)
_PATCHES: Patches = (
    (Signal, "send", lambda: make_send("send", robust=False)),
    (Signal, "send_robust", lambda: make_send("send_robust", robust=True)),
    (Signal, "asend", lambda: make_asend("asend", robust=False)),
    (Signal, "asend_robust", lambda: make_asend("asend_robust", robust=True)),
    (BaseCommand, "execute", make_execute),
    (unittest.TestResult, "startTest", make_start_test),
    (unittest.TestResult, "stopTest", make_stop_test),
    *_WATCH,
)


def watch_connections() -> None:
    """Patch connect() and disconnect() alone, ahead of the rest (as Django imports our
    AppConfig, before any models module): the connections the models and the apps' ready()
    make are seen. Nothing is judged lost until the sends are traced too."""
    hygiene.after_connect = tasks.notice
    _patch(_WATCH)


def install() -> None:
    """Patch the classes, unless they are patched already; the settings are read again."""
    conf.reset()
    if is_installed():
        return
    hygiene.hygiene.ran = ran_as_traced
    hygiene.after_connect = tasks.notice
    tasks.notice()
    _patch(_PATCHES)
    queries.install()


def _patch(patches: Patches) -> None:
    for owner, name, make in patches:
        if (owner, name) not in _originals:
            _originals[(owner, name)] = owner.__dict__[name]
            setattr(owner, name, make())


def uninstall() -> None:
    """Put Django's own methods back, exactly as they were."""
    queries.uninstall()
    hygiene.after_connect = None
    while _originals:
        (owner, name), original = _originals.popitem()
        setattr(owner, name, original)


def is_installed() -> bool:
    """Whether the sends are traced (connect() and disconnect() may be watched alone)."""
    return (Signal, "send") in _originals
