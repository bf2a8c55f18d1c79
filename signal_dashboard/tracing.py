"""Tracing switched on and off, and captured in a block: the paths a project writes.

``install()`` patches the classes (capture/patch.py) and starts the recorder's thread
(record/recorder.py); ``capture()`` subscribes to the recorder for the length of a block. Like
middleware.py, an entry point above the folders: the send path itself is in capture/.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.dispatch import Signal

from .capture import patch
from .capture.events import SignalEvent
from .capture.send import keep_every_send
from .record.recorder import recorder


def install() -> None:
    """Trace every signal send from now on. Safe to call again, before or after django.setup()."""
    patch.install()
    recorder.start()


def uninstall() -> None:
    """Put Django's own methods back, exactly as they were."""
    patch.uninstall()


def is_installed() -> bool:
    """Whether tracing is installed."""
    return patch.is_installed()


class CapturedEvents(list[SignalEvent]):
    """The events recorded inside a :func:`capture` block, in the order they finished."""

    def filter(
        self,
        signal: Signal | str | None = None,
        sender: Any = None,
        receiver: str | None = None,
    ) -> list[SignalEvent]:
        """Events of this signal (object or dotted label), sender (object or label) and receiver
        (a substring of a receiver's ``module.qualname``)."""
        return [
            event
            for event in self
            if (signal is None or event.signal is signal or event.signal_label == signal)
            and (sender is None or event.sender is sender or event.sender_label == sender)
            and (receiver is None or any(receiver in call.label for call in event.receivers))
        ]


@contextmanager
def capture(limit_detail: bool = False) -> Iterator[CapturedEvents]:
    """Record the signal events sent inside the block (installing tracing for it if needed)::

    with capture() as events:
        Pizza.objects.create(name="margherita")
    [event] = events.filter(signal=post_save, sender=Pizza)
    assert event.ok

    Every send is recorded in full, whatever DETAIL_LIMIT says; with ``limit_detail``, as in
    production: sends past the limit are folded, and only their outliers are events.
    """
    was_installed = is_installed()
    install()
    events = CapturedEvents()
    in_full = None if limit_detail else keep_every_send()
    try:
        with recorder.subscribed(events.append, immediate=True):
            yield events
    finally:
        if in_full is not None:
            in_full()
        if not was_installed:
            uninstall()
