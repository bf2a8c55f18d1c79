"""Signal send and request cost in CPU instructions, vanilla Django vs ours, under callgrind.

    python bench/instructions.py [--sends 5000] [--requests 150]

Wall-clock ratios on a shared machine move by tens of percent from run to run; instruction
counts do not. Each case runs in a child process under ``valgrind --tool=callgrind`` twice,
once with no timed sends and once with ``--sends`` of them, and the difference divided by the
sends is the instructions per send: Django's dispatch, the receivers, and for our side
everything tracing does for the send, on the sending thread and in the recorder's drains. A send
carries one plain keyword argument. A third side, "floor", is the least a tracer written in
Python can add (see ``install_minimal_tracer()``): what no amount of work on the rest can go
below.

The recorder's thread drains every 20 ms of wall-clock time, which under valgrind (some 50
times slower) is every few dozen sends, a number that moves with the machine's load. So that
the count does not, the child drains itself, every ``DRAIN_EVERY`` sends, instead of starting
that thread: about what a drain takes at 5,000 sends a second.

A last case is a whole request: ``POST /traffic/bake-batch/`` of the demo (the view
``bench/throughput.py`` loads: 10 traced sends, one receiver that raises, one with async
receivers), made in-process through Django's test client with the demo's middleware, on a
fresh SQLite database, with the receivers' stand-in sleeps skipped and the recorder drained
after every request. Tracing off there is Django with the app installed but ``ENABLED`` off.

Needs valgrind (Debian: ``apt-get install valgrind``). Takes about a minute per case, three
for the request.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import types
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from time import perf_counter_ns
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WARM_UP = 2000
DRAIN_EVERY = 100
WARM_UP_REQUESTS = 50
REQUEST_PATH = "/traffic/bake-batch/"
CASES = (
    # (label, receivers, inside a request)
    ("send, 1 receiver", 1, False),
    ("send, 5 distinct receivers", 5, False),
    ("send, 5 distinct receivers, in a request", 5, True),
)


def child(side: str, receivers: int, in_request: bool, sends: int) -> None:
    sys.path.insert(0, str(REPO))
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False, INSTALLED_APPS=["signal_dashboard"], SIGNAL_DASHBOARD={"ENABLED": False}
    )
    django.setup()
    from django.dispatch import Signal

    from signal_dashboard import tracing
    from signal_dashboard.context import Origin, current_origin
    from signal_dashboard.recorder import recorder

    class Sender:
        pass

    signal = Signal()
    for index in range(receivers):
        # Distinct functions (code objects), as distinct receivers of a real project are.
        namespace: dict[str, object] = {}
        exec(f"def receiver_{index}(sender, **kwargs):\n    return None\n", namespace)
        signal.connect(namespace[f"receiver_{index}"], weak=False)
    if side == "ours":
        recorder.start = lambda: None  # type: ignore[method-assign]  # drained below instead
        tracing.install()
    floor_queue: deque[Any] = deque()
    if side == "floor":
        install_minimal_tracer(floor_queue)
    if in_request:
        current_origin.set(Origin(kind="request", name="GET /"))
    send = signal.send
    drain = floor_queue.clear if side == "floor" else recorder.drain
    for _ in range((WARM_UP + sends) // DRAIN_EVERY):
        for _ in range(DRAIN_EVERY):
            send(sender=Sender, size="large")
        drain()
    os._exit(0)  # the interpreter's teardown is the same for both sides: not counted


def install_minimal_tracer(queue: deque[Any]) -> None:
    """Replace ``Signal.send`` with the least a per-receiver tracer in Python can do: Django's
    dispatch, a clock read around each receiver, and a record of the calls queued for later.

    No statistics, no nesting, no look at the kwargs, no request: a reference point for what
    the rest of tracing may cost, not a usable tracer.
    """
    from django.dispatch import Signal, dispatcher

    no_receivers = dispatcher.NO_RECEIVERS

    def send(self: Signal, sender: Any, **named: Any) -> list[tuple[Any, Any]]:
        if not self.receivers or self.sender_receivers_cache.get(sender) is no_receivers:
            return []
        sync_receivers, _ = self._live_receivers(sender)
        calls: list[tuple[Any, int, int]] = []
        responses = []
        start = perf_counter_ns()
        for receiver in sync_receivers:
            response = receiver(signal=self, sender=sender, **named)
            end = perf_counter_ns()
            calls.append((receiver, start, end - start))
            responses.append((receiver, response))
            start = end
        queue.append((self, sender, calls))
        return responses

    Signal.send = send  # type: ignore[method-assign]


def request_child(side: str, requests: int) -> None:
    """Make ``WARM_UP_REQUESTS + requests`` requests of the demo's heaviest view."""
    sys.path.insert(0, str(REPO))
    work = tempfile.mkdtemp(prefix="signal-bench-")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.demo_settings",
        DEMO_DATABASE=os.path.join(work, "demo.sqlite3"),
        BENCH_TRACING="on" if side == "ours" else "off",
    )
    import django

    from signal_dashboard.recorder import recorder

    recorder.start = lambda: None  # type: ignore[method-assign]  # drained below instead
    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from signal_dashboard.demo.pizzeria import signals

    async def no_wait(seconds: float) -> None:
        return None

    signals.time = types.SimpleNamespace(sleep=lambda seconds: None)  # type: ignore[attr-defined]
    signals.asyncio = types.SimpleNamespace(sleep=no_wait)  # type: ignore[attr-defined]
    call_command("migrate", verbosity=0)
    random.seed(0)  # the view picks names and sizes at random: the same ones on both sides
    client = Client(HTTP_HOST="localhost")  # one of the demo's ALLOWED_HOSTS
    for _ in range(WARM_UP_REQUESTS + requests):
        client.cookies.clear()  # as a load generator, which keeps no messages cookie
        response = client.post(REQUEST_PATH)
        if response.status_code != 302:
            raise RuntimeError(f"POST {REQUEST_PATH} answered {response.status_code}")
        recorder.drain()
    shutil.rmtree(work)  # the same on both sides, so not counted
    os._exit(0)


def instructions(*child_args: object) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        *map(str, child_args),
    ]
    # A fixed hash seed: dictionaries laid out alike in every child, counts alike to a few dozen.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    match = re.search(r"Collected : (\d+)", result.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{result.stderr[-2000:]}")
    return int(match.group(1))


def per_send(side: str, receivers: int, in_request: bool, sends: int) -> float:
    return per_unit(sends, "--child", side, receivers, int(in_request))


def per_unit(count: int, *child_args: object) -> float:
    """Instructions per send (or request): the child run with ``count`` of them, less the one
    with none, divided by ``count``."""
    with ThreadPoolExecutor(2) as pool:
        base, full = pool.map(lambda n: instructions(*child_args, n), (0, count))
    return (full - base) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=5000, help="timed sends per case")
    parser.add_argument("--requests", type=int, default=150, help="timed requests")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--request-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, receivers, in_request, sends = args.child
        child(side, int(receivers), bool(int(in_request)), int(sends))
        return
    if args.request_child:
        side, requests = args.request_child
        request_child(side, int(requests))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    import django

    sends = max(1, round(args.sends / DRAIN_EVERY)) * DRAIN_EVERY
    print(
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"instructions per send over {sends} sends (callgrind)"
    )
    header = f"{'case':<44}{'vanilla':>10}{'ours':>10}{'ratio':>8}"
    print(header + f"{'floor':>10}{'ratio':>8}")
    print("-" * (len(header) + 18))
    for label, receivers, in_request in CASES:
        vanilla, ours, floor = (
            per_send(side, receivers, in_request, sends) for side in ("vanilla", "ours", "floor")
        )
        print(
            f"{label:<44}{vanilla:>10.0f}{ours:>10.0f}{ours / vanilla:>8.2f}"
            f"{floor:>10.0f}{floor / vanilla:>8.2f}"
        )
    print("floor: a minimal tracer, timing each receiver and nothing more (see its docstring)")
    print()
    print(f"instructions per request over {args.requests} requests, tracing off and on")
    print(header.replace("vanilla", "    off").replace("   ours", "     on"))
    print("-" * len(header))
    off, on = (per_unit(args.requests, "--request-child", side) for side in ("vanilla", "ours"))
    print(f"{'POST ' + REQUEST_PATH + ' (demo)':<44}{off:>10.0f}{on:>10.0f}{on / off:>8.2f}")


if __name__ == "__main__":
    main()
