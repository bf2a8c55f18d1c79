"""The demo's receivers stand in for slow services by sleeping; the benchmarks of the server's
own work (``throughput.py --no-waits`` and ``instructions.py``'s request) skip those sleeps."""

from __future__ import annotations

import types


def skip_demo_waits() -> None:
    """Make the demo's receivers return at once instead of sleeping (after django.setup())."""
    from signal_dashboard.demo.pizzeria import signals

    async def no_wait(seconds: float) -> None:
        return None

    signals.time = types.SimpleNamespace(sleep=lambda seconds: None)  # type: ignore[attr-defined]
    signals.asyncio = types.SimpleNamespace(sleep=no_wait)  # type: ignore[attr-defined]
