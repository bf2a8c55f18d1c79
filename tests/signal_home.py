"""A module that defines a signal, for tests of how signals are named (tests/test_labels.py)."""

from django.dispatch import Signal

order_placed = Signal()
