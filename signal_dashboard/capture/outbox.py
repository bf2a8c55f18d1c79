"""Where the sending threads leave what they traced, for the recorder (record/) to drain.

Sends, findings and finished origins are appended to one deque: ``deque.append`` is atomic
under the GIL, so a sending thread takes no lock. The recorder takes them from ``pending`` in
the order they came, and answers ``ran()`` for hygiene. Nothing here knows the recorder: it
plugs itself in when it is made, so that capture/ imports nothing above it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from .context import suspended

logger = logging.getLogger("signal_dashboard")

# Past this many items not yet drained, new ones are dropped and counted: a recorder that cannot
# keep up must not grow the process without bound.
PENDING_LIMIT = 20_000

Subscriber = Callable[[Any], None]


def _never_ran(signal: Any, code: Any) -> bool:
    return False


class Outbox:
    """What the sending side hands on: a send's event, a folded send's tally (once), a finding,
    or a finished request, command or task run."""

    def __init__(self) -> None:
        # Never replaced: the recorder drains this deque.
        self.pending: deque[Any] = deque()
        self.lost = 0  # items that found ``pending`` full
        # Called on the sending thread as each send finishes, for capture(): tests read what
        # they captured before anything is drained.
        self.immediate: tuple[Subscriber, ...] = ()
        self.immediate_failures = 0
        # Whether a receiver's call was recorded (see record.recorder.Recorder.ran()).
        self.ran: Callable[[Any, Any], bool] = _never_ran

    def put(self, item: Any) -> None:
        """Take a finished send (or a tally, a finding, a finished origin): it is accounted at
        the recorder's next drain."""
        pending = self.pending
        if len(pending) < PENDING_LIMIT:
            pending.append(item)
        else:
            self.lost += 1

    def notify_immediate(self, event: Any) -> None:
        with suspended():
            for subscriber in self.immediate:
                try:
                    subscriber(event)
                except Exception:
                    self.immediate_failures += 1
                    if self.immediate_failures == 1:
                        logger.exception("signal_dashboard subscriber %r failed", subscriber)


outbox = Outbox()
