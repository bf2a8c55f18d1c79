from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def ms(nanoseconds: int | None) -> str:
    """Nanoseconds as milliseconds, e.g. ``12.345 ms``."""
    if nanoseconds is None:
        return ""
    return f"{nanoseconds / 1e6:.3f} ms"
