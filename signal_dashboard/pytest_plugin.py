"""pytest plugin: the ``signal_events`` fixture, for asserting on signals in tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .tracing import CapturedEvents


@pytest.fixture
def signal_events() -> Iterator[CapturedEvents]:
    """The signal events sent during the test::

    def test_order(signal_events):
        Order.objects.create(...)
        [event] = signal_events.filter(signal=post_save, sender=Order)
        assert event.ok
    """
    # Imported here: pytest loads plugins before Django is set up.
    from .tracing import capture

    with capture() as events:
        yield events
