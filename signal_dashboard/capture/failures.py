"""Tracing's own failures: counted, logged the first time, never raised into the app."""

from __future__ import annotations

import logging

from . import payload

logger = logging.getLogger("signal_dashboard")


class Failures:
    """Counts what tracing could not do; the signal was sent as without it."""

    count = 0

    @classmethod
    def add(cls) -> None:
        cls.count += 1
        if cls.count == 1:
            logger.exception(
                "signal_dashboard could not trace a signal; the signal was sent normally. "
                "Further tracing failures are counted, not logged."
            )


def tracing_failures() -> int:
    """How many times tracing failed (the signals themselves were sent normally)."""
    return Failures.count + payload.failures
