from __future__ import annotations

from typing import Any

from django.dispatch import Signal

oven_lit = Signal()


def light_the_oven(sender: Any, **kwargs: Any) -> None:
    return None


oven_lit.connect(light_the_oven)
oven_lit.connect(light_the_oven, dispatch_uid="lit-again")  # doubled: runs twice per send
