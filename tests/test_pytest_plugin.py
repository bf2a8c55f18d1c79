"""The ``signal_events`` fixture, registered through the pytest11 entry point."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models.signals import post_save

from signal_dashboard.demo.pizzeria.models import Order, Pizza
from signal_dashboard.tracing import CapturedEvents


@pytest.mark.django_db
def test_post_save_sent_once_for_order_without_errors(signal_events: CapturedEvents) -> None:
    pizza = Pizza.objects.create(name="margherita", price="8.00")
    Order.objects.create(pizza=pizza, customer_name="Ada")
    [event] = signal_events.filter(signal=post_save, sender=Order)
    assert event.ok
    assert event.payload["created"] is True
    [event] = signal_events.filter(
        signal="django.db.models.signals.post_save", sender="pizzeria.Pizza"
    )
    assert [call.label for call in event.receivers] == [
        "signal_dashboard.demo.pizzeria.signals.refresh_menu_board"
    ]


def test_fixture_is_empty_when_nothing_is_sent(signal_events: CapturedEvents) -> None:
    assert signal_events == []


def test_fixture_filters_by_receiver(signal_events: CapturedEvents) -> None:
    from django.dispatch import Signal

    signal = Signal()

    def on_pizza(sender: Any, **kwargs: Any) -> None:
        return None

    signal.connect(on_pizza)
    signal.send(sender=Pizza)
    assert len(signal_events.filter(receiver="on_pizza")) == 1
    assert signal_events.filter(receiver="nobody") == []
