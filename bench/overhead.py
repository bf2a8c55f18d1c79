"""Signal send overhead: vanilla Django vs signal_dashboard vs Sentry, interleaved in one run.

    python bench/overhead.py [--sends 20000] [--rounds 7]

For ``send`` and ``asend`` with 0, 1 and 5 trivial receivers, prints the best ns/send of each
side over the rounds, each side's ratio to vanilla, and whether signal_dashboard ("ours") meets
its targets: at most 1.1x vanilla with no receivers, 1.5x with 1 or 5, and cheaper than Sentry.

Sentry is sentry-sdk's Django integration with ``signals_spans=True``, its default integrations
and ``traces_sample_rate=1.0``, sending to a transport that drops every envelope. The
integration replaces ``Signal._live_receivers`` so that each sync receiver runs inside a span;
it records spans only inside a transaction, so Sentry's sends run inside one, as they would
inside a request. A send measured outside a transaction would cost Sentry almost nothing and
record nothing.

All three sides run in one process and alternate within each round, in a rotating order, so
that machine noise hits them alike. Sentry cannot be uninstalled, so the script notes the class
attributes that ``sentry_sdk.init()`` replaced on the send path (``Signal._live_receivers``;
``ThreadPoolExecutor.submit``, which ``asend`` reaches through ``sync_to_async``) and puts the
originals back for the other two sides. Nothing else Sentry patches runs during a send.

Each side's sends are made in "requests" of ``REQUEST_SENDS``: for Sentry a transaction, for
ours an ``Origin`` only in the "in request" row (elsewhere our sends belong to the process, as in
a management command or a worker). Only the sends are timed; starting and finishing a request
(Sentry's transaction event, our request summary) happens between the timed stretches. A
transaction keeps at most 1000 spans and drops the rest, so 100 sends of 5 receivers (500 spans)
stay under the limit and every span that is timed is also kept; the script checks the count.

Sentry wraps sync receivers only, so with async receivers it records nothing and is not a like
for like comparison; its verdict there is "-". The "in request" row sends to 5 distinct receiver
functions (the other rows' receivers share one code object, so one statistics entry) while ours
accounts every send to a request, as its middleware does.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from signal_dashboard.capture.context import Origin, current_origin  # noqa: E402
from signal_dashboard.record.recorder import recorder  # noqa: E402

TARGETS = {0: 1.1, 1: 1.5, 5: 1.5}
# Sends per request (Sentry transaction, our Origin); 5 receivers make 500 spans, under
# Sentry's limit of 1000 per transaction.
REQUEST_SENDS = 100
# The classes whose attributes Sentry may replace on the way through send() and asend().
SEND_PATH_CLASSES: tuple[type, ...] = (Signal, ThreadPoolExecutor, threading.Thread)

Boundary = Callable[[], AbstractContextManager[object]]
Timer = Callable[[Signal, int, Boundary], float]


class Sender:
    pass


def make_receiver(is_async: bool, name: str = "receiver") -> Callable[..., Any]:
    """A trivial receiver; each name gets a code object of its own."""
    if is_async:

        async def receiver(sender: object, **kwargs: object) -> None:
            return None

    else:

        def receiver(sender: object, **kwargs: object) -> None:
            return None

    if name != "receiver":
        # Tracing names and counts receivers by code object, and Sentry by qualified name, so
        # distinct receivers need both.
        receiver.__code__ = receiver.__code__.replace(co_name=name, co_qualname=name)
        receiver.__name__ = receiver.__qualname__ = name
    return receiver


def make_signal(receivers: int, is_async: bool, distinct: bool = False) -> Signal:
    signal = Signal()
    for i in range(receivers):
        name = f"receiver_{i}" if distinct else "receiver"
        signal.connect(make_receiver(is_async, name), weak=False)
    return signal


def time_send(signal: Signal, sends: int, boundary: Boundary) -> float:
    send = signal.send
    elapsed = 0
    for _ in range(sends // REQUEST_SENDS):
        with boundary():
            start = time.perf_counter_ns()
            for _ in range(REQUEST_SENDS):
                send(sender=Sender, size="large")
            elapsed += time.perf_counter_ns() - start
    return elapsed / sends


def time_asend(signal: Signal, sends: int, boundary: Boundary) -> float:
    async def run() -> float:
        asend = signal.asend
        elapsed = 0
        for _ in range(sends // REQUEST_SENDS):
            with boundary():
                start = time.perf_counter_ns()
                for _ in range(REQUEST_SENDS):
                    await asend(sender=Sender, size="large")
                elapsed += time.perf_counter_ns() - start
        return elapsed / sends

    return asyncio.run(run())


@contextmanager
def request_origin() -> Iterator[Origin]:
    """What SignalDashboardMiddleware does around a request, minus the HTTP."""
    origin = Origin(
        kind="request",
        name="GET /bench/",
        request_id="bench",
        method="GET",
        path="/bench/",
        started_ns=time.perf_counter_ns(),
    )
    token = current_origin.set(origin)
    try:
        yield origin
    finally:
        current_origin.reset(token)
        origin.duration_ns = time.perf_counter_ns() - origin.started_ns
        origin.status = 200
        recorder.record(origin)


class SentryPatches:
    """The send-path attributes ``sentry_sdk.init()`` replaced, to switch Sentry off and on."""

    def __init__(self, before: dict[type, dict[str, object]]) -> None:
        self.replaced = [
            (cls, name, before[cls][name], value)
            for cls in SEND_PATH_CLASSES
            for name, value in vars(cls).items()
            if before[cls].get(name) is not value
        ]
        # A new attribute could not be put back by setattr; none is expected.
        assert all(name in before[cls] for cls, name, _, _ in self.replaced), self.replaced

    def apply(self) -> None:
        for cls, name, _, patched in self.replaced:
            setattr(cls, name, patched)

    def remove(self) -> None:
        for cls, name, original, _ in self.replaced:
            setattr(cls, name, original)

    def names(self) -> str:
        return ", ".join(f"{cls.__name__}.{name}" for cls, name, _, _ in self.replaced)


@dataclass
class SpanCount:
    """Spans Sentry kept, against the sync receiver calls it ran in a transaction."""

    kept: int = 0
    expected: int = 0


def init_sentry(spans: SpanCount) -> tuple[SentryPatches, Boundary] | None:
    """Initialize Sentry as a Django project would, or None if sentry-sdk is not installed."""
    try:
        import sentry_sdk
        from sentry_sdk.envelope import Envelope
        from sentry_sdk.integrations.django import DjangoIntegration
        from sentry_sdk.transport import Transport
    except ImportError:
        return None

    class DroppingTransport(Transport):
        """Drops envelopes instead of sending them, counting the spans they carry."""

        def capture_envelope(self, envelope: Envelope) -> None:
            event = envelope.get_transaction_event()
            if event is not None:
                spans.kept += len(event.get("spans", ()))

    before = {cls: dict(vars(cls)) for cls in SEND_PATH_CLASSES}
    sentry_sdk.init(
        dsn="http://public@127.0.0.1:9/1",
        integrations=[DjangoIntegration(signals_spans=True)],
        traces_sample_rate=1.0,
        transport=DroppingTransport,
    )
    patches = SentryPatches(before)
    patches.remove()

    def transaction() -> AbstractContextManager[object]:
        return sentry_sdk.start_transaction(op="http.server", name="GET /bench/")

    return patches, transaction


@dataclass(frozen=True)
class Side:
    name: str
    switch_on: Callable[[], None]
    boundary: Callable[[bool], Boundary]  # in_request -> the boundary of each request


def measure(
    sides: list[Side],
    timer: Timer,
    signal: Signal,
    sends: int,
    rounds: int,
    in_request: bool,
) -> dict[str, float]:
    best = dict.fromkeys((side.name for side in sides), float("inf"))
    for round_ in range(rounds):
        # Rotating who goes first keeps any warm-up or drift from favouring one side.
        shift = round_ % len(sides)
        for side in sides[shift:] + sides[:shift]:
            side.switch_on()
            best[side.name] = min(best[side.name], timer(signal, sends, side.boundary(in_request)))
            recorder.clear()
    tracing.uninstall()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=20000, help="sends per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per side")
    args = parser.parse_args()
    sends = max(1, round(args.sends / REQUEST_SENDS)) * REQUEST_SENDS

    spans = SpanCount()
    sentry = init_sentry(spans)

    def vanilla() -> None:
        tracing.uninstall()
        if sentry:
            sentry[0].remove()

    def ours() -> None:
        vanilla()
        tracing.install()

    sides = [
        Side("vanilla", vanilla, lambda in_request: nullcontext),
        Side("ours", ours, lambda in_request: request_origin if in_request else nullcontext),
    ]
    if sentry:
        patches, transaction = sentry

        def sentry_on() -> None:
            vanilla()
            patches.apply()

        sides.append(Side("sentry", sentry_on, lambda in_request: transaction))

    print(
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"{args.rounds} rounds x {sends} sends, best round per side"
    )
    if sentry:
        import sentry_sdk

        print(
            f"sentry-sdk {sentry_sdk.VERSION}: one transaction per {REQUEST_SENDS} sends; "
            f"switched off for the other sides by restoring {patches.names()}"
        )
    else:
        print("sentry-sdk is not installed: no Sentry columns")
    header = f"{'method':<7}{'receivers':<26}{'vanilla ns':>11}{'ours ns':>9}{'ratio':>7}"
    header += f"{'target':>9}{'':<8}"
    if sentry:
        header += f"{'sentry ns':>10}{'ratio':>7}  ours < sentry"
    print(header)
    print("-" * len(header))

    missed = []
    # asend() with sync receivers mostly measures sync_to_async's thread hop; both are shown.
    cases = [
        ("send", "sync", time_send, False, False),
        ("asend", "async", time_asend, True, False),
        ("asend", "sync", time_asend, False, False),
    ]
    rows = [
        (method, receivers, kind, timer, is_async, False)
        for method, kind, timer, is_async, _ in cases
        for receivers in (0, 1, 5)
        if not (receivers == 0 and kind == "sync" and method == "asend")
    ]
    rows.append(("send", 5, "distinct, in request", time_send, False, True))
    for method, receivers, kind, timer, is_async, in_request in rows:
        signal = make_signal(receivers, is_async, distinct=in_request)
        best = measure(sides, timer, signal, sends, args.rounds, in_request)
        spans.expected += 0 if is_async else receivers * sends * args.rounds
        vanilla_ns, ours_ns = best["vanilla"], best["ours"]
        ratio = ours_ns / vanilla_ns
        target = TARGETS[receivers]
        label = f"{receivers} {kind}" if receivers else "0"
        line = f"{method:<7}{label:<26}{vanilla_ns:>11.0f}{ours_ns:>9.0f}{ratio:>7.2f}"
        line += f"   <= {target} {'ok' if ratio <= target else 'MISSED':<7}"
        if ratio > target:
            missed.append(f"{method}/{label}: {ratio:.2f}x > {target}x")
        if sentry:
            sentry_ns = best["sentry"]
            line += f"{sentry_ns:>10.0f}{sentry_ns / vanilla_ns:>7.2f}  "
            if receivers == 0 or is_async:
                line += "-"  # Sentry records nothing here: there is nothing to be cheaper than
            elif ours_ns < sentry_ns:
                line += "yes"
            else:
                line += "NO"
                missed.append(f"{method}/{label}: ours {ours_ns:.0f} ns >= sentry {sentry_ns:.0f}")
        print(line)

    if sentry:
        print(
            f"- : Sentry records nothing (no receivers, or async receivers, which it does not "
            f"wrap). Sentry kept {spans.kept} spans for {spans.expected} sync receiver calls."
        )
    print("all targets met" if not missed else "targets missed:\n  " + "\n  ".join(missed))


if __name__ == "__main__":
    main()
