"""Signal send overhead: vanilla Django vs signal_dashboard tracing, interleaved in one run.

    python bench/overhead.py [--sends 20000] [--rounds 7]

For ``send`` and ``asend`` with 0, 1 and 5 trivial receivers, prints the best ns/send of
each side over the rounds and the ratio traced / vanilla. Rounds alternate between the two
sides so that machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    INSTALLED_APPS=["signal_dashboard"],
    SIGNAL_DASHBOARD={"ENABLED": False},
)
django.setup()

from django.dispatch import Signal  # noqa: E402

from signal_dashboard import tracing  # noqa: E402
from signal_dashboard.recorder import recorder  # noqa: E402

TARGETS = {0: 1.1, 1: 1.5, 5: 1.5}


class Sender:
    pass


def make_signal(receivers: int, is_async: bool) -> Signal:
    signal = Signal()
    for _ in range(receivers):
        if is_async:

            async def receiver(sender: object, **kwargs: object) -> None:
                return None

        else:

            def receiver(sender: object, **kwargs: object) -> None:
                return None

        signal.connect(receiver, weak=False)
    return signal


def time_send(signal: Signal, sends: int) -> float:
    send = signal.send
    start = time.perf_counter_ns()
    for _ in range(sends):
        send(sender=Sender, size="large")
    return (time.perf_counter_ns() - start) / sends


def time_asend(signal: Signal, sends: int) -> float:
    async def run() -> float:
        asend = signal.asend
        start = time.perf_counter_ns()
        for _ in range(sends):
            await asend(sender=Sender, size="large")
        return (time.perf_counter_ns() - start) / sends

    return asyncio.run(run())


def measure(
    timer: Callable[[Signal, int], float], signal: Signal, sends: int, rounds: int
) -> tuple[float, float]:
    best = {"vanilla": float("inf"), "traced": float("inf")}
    for _ in range(rounds):
        for side in ("vanilla", "traced"):
            if side == "traced":
                tracing.install()
            else:
                tracing.uninstall()
            best[side] = min(best[side], timer(signal, sends))
            recorder.clear()
    tracing.uninstall()
    return best["vanilla"], best["traced"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=20000, help="sends per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per side")
    args = parser.parse_args()

    print(
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"{args.rounds} rounds x {args.sends} sends, best round per side"
    )
    header = f"{'method':<7}{'receivers':>12}{'vanilla ns':>12}{'traced ns':>12}{'ratio':>8}"
    print(header)
    print("-" * len(header) + f"{'target':>9}")
    missed = []
    # asend() with sync receivers mostly measures sync_to_async's thread hop; both are shown.
    cases = (
        ("send", "sync", time_send, False),
        ("asend", "async", time_asend, True),
        ("asend", "sync", time_asend, False),
    )
    for method, kind, timer, is_async in cases:
        for receivers in (0, 1, 5):
            if receivers == 0 and kind == "sync" and method == "asend":
                continue
            signal = make_signal(receivers, is_async)
            vanilla, traced = measure(timer, signal, args.sends, args.rounds)
            ratio = traced / vanilla
            target = TARGETS[receivers]
            verdict = "ok" if ratio <= target else "MISSED"
            if ratio > target:
                missed.append(f"{method}/{receivers} {kind}")
            label = f"{receivers} {kind}" if receivers else "0"
            print(
                f"{method:<7}{label:>12}{vanilla:>12.0f}{traced:>12.0f}{ratio:>8.2f}"
                f"   <= {target} {verdict}"
            )
    print("all targets met" if not missed else f"targets missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
