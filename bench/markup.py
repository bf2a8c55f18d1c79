"""What the dashboard's markup costs to make: templates against the Python that makes rows.

    python bench/markup.py [--rounds 7]

Every event a dashboard shows becomes a stream row, so the row is made in Python
(``rows.row_html()``) while ``templates/signal_dashboard/_row.html`` documents the same markup;
this prints both, per row, to show what the template would cost. Everything else is made by
templates, and this prints what they cost: a push (the status line and 20 rows already made),
and the latency table with the request list, as a dashboard is sent them while traffic flows,
at the demo's size (10 latency rows, 50 requests) and at the most a page shows (100 and 50).
Best of ``--rounds``, in microseconds, with the ratio of the template to ``row_html()``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


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
        ],
        ROOT_URLCONF=__name__,
        TEMPLATES=[
            {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}
        ],
        SIGNAL_DASHBOARD={"ENABLED": False},
        USE_TZ=True,
    )
    django.setup()


def __getattr__(name: str) -> Any:
    """The URLconf of this script (``ROOT_URLCONF``): the dashboard under ``/signals/``."""
    if name != "urlpatterns":
        raise AttributeError(name)
    from django.urls import include, path

    return [path("signals/", include("signal_dashboard.urls"))]


def stream_rows(count: int) -> list[dict[str, Any]]:
    origin = {"kind": "request", "method": "POST", "path": "/pizzas/bake/", "name": "POST /"}
    return [
        {
            "id": f"1:{index}",
            "signal": "django.db.models.signals.post_save",
            "sender": "pizzeria.Pizza",
            "method": "send",
            "timestamp": 1_763_842_000.0 + index / 1000,
            "duration_ns": 1_234_567 + index,
            "receiver_count": 3,
            "slowest_receiver": "pizzeria.receivers.notify_kitchen",
            "slowest_receiver_ns": 1_000_000,
            "ok": index % 10 != 0,
            "error": None if index % 10 else "ValueError: oven is cold",
            "origin": origin,
        }
        for index in range(count)
    ]


def tables_context(latency_rows: int, requests: int) -> dict[str, Any]:
    from signal_dashboard.capture.histogram import Histogram
    from signal_dashboard.record.stats.series import Storms
    from signal_dashboard.record.stats.table import TableQuery, TableRow

    rows = []
    for index in range(latency_rows):
        histogram = Histogram()
        for value in range(1, 400):
            histogram.add(value * 7919 * (index + 1) % 50_000_000 + 1000)
        rows.append(
            TableRow(
                name=f"pizzeria.receivers.receiver_{index}",
                histogram=histogram,
                location=f"pizzeria/receivers.py:{index + 10}",
                storms=Storms(requests=index % 3, max_calls=60),
                slow=index % 4 == 0,
            )
        )
    summary = {
        "kind": "request",
        "method": "POST",
        "path": "/pizzas/bake/",
        "name": "POST /pizzas/bake/",
        "status": 201,
        "error": None,
        "duration_ns": 12_345_678,
        "signal_count": 40,
        "receiver_ns": 2_000_000,
        "receiver_share": 0.162,
        "slowest_receiver": "pizzeria.receivers.notify_kitchen",
        "slowest_receiver_ns": 1_500_000,
        "storms": [{"receiver": "pizzeria.receivers.count_toppings", "calls": 60}],
    }
    return {
        "latency_rows": rows,
        "latency_total": len(rows),
        "table": TableQuery(),
        "window_seconds": 300,
        "from_buffer": False,
        "unreadable": 0,
        "request_rows": [
            {**summary, "id": index, "url": f"/signals/requests/{index}/"}
            for index in range(requests)
        ],
        "storm_threshold": 50,
        "slow_ms": 100,
    }


def best(function: Callable[[], object], number: int, rounds: int) -> float:
    """Microseconds per call, the best of ``rounds``."""
    return min(timeit.repeat(function, number=number, repeat=rounds)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    setup()
    from django.template.loader import get_template

    from signal_dashboard.web.rows import event_url_parts, push_html, row_html
    from signal_dashboard.web.tables import tables_html

    rows = stream_rows(100)
    row_template = get_template("signal_dashboard/_row.html")
    url = event_url_parts()
    python_row = best(lambda: [row_html(row, url) for row in rows], 20, args.rounds) / len(rows)
    template_row = best(
        lambda: [row_template.render({"row": row}) for row in rows], 20, args.rounds
    ) / len(rows)
    made = "".join(row_html(row, url) for row in rows[:20])
    status = {"shared": False, "up": True, "error": ""}
    push = best(
        lambda: push_html(
            rows_html=made,
            replace=False,
            rate=123.4,
            dropped=0,
            transport=status,
            paused=False,
            held=0,
            new_senders=[],
        ),
        200,
        args.rounds,
    )
    demo = tables_context(10, 50)
    most = tables_context(100, 50)
    tables_html(demo)  # compiled and cached once, as in a server
    demo_tables = best(lambda: tables_html(demo), 10, args.rounds)
    most_tables = best(lambda: tables_html(most), 5, args.rounds)
    print(f"Python {platform.python_version()}, Django {__import__('django').get_version()}")
    print(f"{'what':48} {'µs':>9}")
    print(f"{'stream row, row_html()':48} {python_row:9.1f}")
    print(f"{'stream row, _row.html':48} {template_row:9.1f}  ({template_row / python_row:.1f}x)")
    print(f"{'push: status line and 20 rows made':48} {push:9.1f}")
    print(f"{'tables: 10 latency rows, 50 requests':48} {demo_tables:9.1f}")
    print(f"{'tables: 100 latency rows, 50 requests':48} {most_tables:9.1f}")


if __name__ == "__main__":
    main()
