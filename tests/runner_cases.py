"""Tests for Django's own runner to run (see test_origins.py): each connects a receiver in
setUp and disconnects it in tearDown, as projects' tests do, and its receiver runs one COUNT."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.db.models.signals import post_save
from django.test import TestCase


def count_groups(sender: Any, **kwargs: Any) -> None:
    Group.objects.count()


class KitchenTests(TestCase):
    def setUp(self) -> None:
        post_save.connect(count_groups, sender=Group)

    def tearDown(self) -> None:
        post_save.disconnect(count_groups, sender=Group)

    def test_first(self) -> None:
        Group.objects.create(name="first")

    def test_second(self) -> None:
        Group.objects.create(name="second")

    def test_third(self) -> None:
        Group.objects.create(name="third")

    def test_fourth(self) -> None:
        Group.objects.create(name="fourth")
