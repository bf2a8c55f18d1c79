"""What users feel: model workloads with signal receivers, vanilla Django vs ours, in one run.

    python bench/workloads.py [--rows 10000] [--saves 1000] [--queries 5000] [--rounds 7]

Three workloads on the demo's ``Topping`` model, in an in-memory SQLite database, each inside a
request (an ``Origin``, as the middleware makes), the first two as Django's docs warn they get
expensive:

- iterate ``--rows`` rows with one ``post_init`` receiver (``list(Topping.objects.all())``);
- ``save()`` ``--saves`` new rows with a ``pre_save`` and a ``post_save`` receiver;
- run ``--queries`` small queries outside any receiver (``.exists()`` by primary key): what
  counting the request's queries costs (see signal_dashboard/capture/queries.py).

Four sides alternate within each round, in a rotating order, so that machine noise hits them
alike: vanilla (tracing not installed), "full" (every send in full detail), "folded"
(``DETAIL_LIMIT`` at its value in ``FOLDED_LIMIT``: past it, sends are timed, counted and
folded) and "otel" (full, and exported as OpenTelemetry spans through the SDK's batch processor,
to an exporter that drops them, as one that ships them would run on its own thread). The best
time of each side over the rounds is printed with its ratio to vanilla. The
recorder drains on its own thread as in a server, and once more, timed, at the end of each
workload run, so its work is counted.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FOLDED_LIMIT = 25


def setup() -> None:
    sys.path.insert(0, str(REPO))
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "signal_dashboard",
            "signal_dashboard.demo.pizzeria",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        SIGNAL_DASHBOARD={"ENABLED": False},
        USE_TZ=True,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, run_syncdb=True)


def on_init(sender: Any, instance: Any, **kwargs: Any) -> None:
    instance.seen = True


def on_save(sender: Any, instance: Any, **kwargs: Any) -> None:
    instance.saved = True


def workloads(rows: int, saves: int, queries: int) -> dict[str, Callable[[], None]]:
    from django.db.models.signals import post_init, post_save, pre_save

    from signal_dashboard.demo.pizzeria.models import Topping

    Topping.objects.bulk_create(Topping(name=f"t{index}") for index in range(rows))
    post_init.connect(on_init, sender=Topping, weak=False)
    pre_save.connect(on_save, sender=Topping, weak=False)
    post_save.connect(on_save, sender=Topping, weak=False)

    def iterate() -> None:
        assert len(list(Topping.objects.all())) >= rows

    names = itertools.count()  # names are unique

    def save() -> None:
        for _ in range(saves):
            Topping(name=f"s{next(names)}").save()

    first = Topping.objects.values_list("pk", flat=True).first()

    def query() -> None:
        for _ in range(queries):
            Topping.objects.filter(pk=first).exists()

    return {
        f"iterate {rows} rows, post_init": iterate,
        f"save() {saves} rows": save,
        f"{queries} queries, no receiver": query,
    }


def span_exporter() -> Any:
    """signal_dashboard.integrations.otel's exporter, to spans that go nowhere."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from signal_dashboard.integrations.otel import Exporter

    class Dropped(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropped()))
    return Exporter(provider, MeterProvider())


def timed(workload: Callable[[], None], side: str, otel: Any) -> float:
    from django.conf import settings

    from signal_dashboard import tracing
    from signal_dashboard.capture.context import Origin, current_origin
    from signal_dashboard.record.recorder import recorder

    if side == "vanilla":
        tracing.uninstall()
    else:
        limit = FOLDED_LIMIT if side == "folded" else None
        settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "DETAIL_LIMIT": limit}
        tracing.install()  # which reads the settings again
    if side == "otel":
        otel.start()
    token = current_origin.set(Origin(kind="request", name="GET /bench/"))
    try:
        start = time.perf_counter()
        workload()
        recorder.drain()
        return time.perf_counter() - start
    finally:
        current_origin.reset(token)
        if side == "otel":
            otel.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--saves", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    setup()
    import django

    sides = ["vanilla", "full", "folded", "otel"]
    otel = span_exporter()
    print(
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"best of {args.rounds} rounds; folded: DETAIL_LIMIT={FOLDED_LIMIT}"
    )
    print(
        f"{'workload':<32}"
        + "".join(f"{side:>10}" for side in sides)
        + "".join(f"{side:>8}" for side in sides[1:])
    )
    for label, workload in workloads(args.rows, args.saves, args.queries).items():
        best = dict.fromkeys(sides, float("inf"))
        for round_ in range(args.rounds):
            for side in sides[round_ % 4 :] + sides[: round_ % 4]:
                best[side] = min(best[side], timed(workload, side, otel))
        ratios = [best[side] / best["vanilla"] for side in sides[1:]]
        print(
            f"{label:<32}"
            + "".join(f"{best[side] * 1000:>8.1f}ms" for side in sides)
            + "".join(f"{ratio:>7.2f}x" for ratio in ratios)
        )


if __name__ == "__main__":
    main()
