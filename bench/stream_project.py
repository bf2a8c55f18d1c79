"""The project bench/stream.py serves with Daphne: settings, URLs and the ASGI application.

One module, so a benchmark run needs no files of its own besides a database. The environment
gives the SQLite file (``STREAM_BENCH_DB``) and, for the Redis transport, the server
(``STREAM_BENCH_REDIS_URL``; empty or unset for the in-memory channel layer).

``GET /produce/?rate=R&seconds=S`` sends :data:`order_placed` R times a second for S seconds
from a thread of the server process, outside any request, and answers with what it achieved.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from array import array
from typing import Any

from django.dispatch import Signal
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path

SECRET_KEY = "signal-dashboard-bench-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django_htmx",
    "signal_dashboard",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "bench.stream_project"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("STREAM_BENCH_DB", ":memory:"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
USE_TZ = True
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
SIGNAL_DASHBOARD = {
    "ENABLED": True,
    "REDIS_URL": os.environ.get("STREAM_BENCH_REDIS_URL") or None,
    # A page shows at most MAX_ROWS of a push's rows, the newest (the others would scroll off
    # at once), and does not count the others as dropped. Pushes come ten times a second, and
    # less often when the server falls behind: raised past any push here, so that every event
    # either reaches the socket or is counted as dropped.
    "MAX_ROWS": 1_000_000,
}

# The producer sleeps this long when it is ahead of its schedule, then sends what fell due
# meanwhile in one burst: rate * PACE_TICK sends at a time.
PACE_TICK = 0.001

order_placed = Signal()
"""What the producer sends: sender a class, small immutable kwargs, two receivers."""


class Order:
    pass


def update_inventory(sender: type, order_id: int, **kwargs: Any) -> int:
    return order_id % 7


def notify_kitchen(sender: type, order_id: int, **kwargs: Any) -> None:
    return None


order_placed.connect(update_inventory, sender=Order, weak=False)
order_placed.connect(notify_kitchen, sender=Order, weak=False)


def produce(rate: float, seconds: float) -> dict[str, Any]:
    """Send ``rate`` signals a second for ``seconds``, timing every send call."""
    total = int(rate * seconds)
    durations = array("q", bytes(8 * total))
    send = order_placed.send
    clock = time.perf_counter_ns
    sent = 0
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    start = clock()
    while sent < total:
        due = min(total, int(rate * (clock() - start) / 1e9))
        if due <= sent:
            time.sleep(PACE_TICK)
            continue
        while sent < due:
            began = clock()
            send(sender=Order, order_id=sent)
            durations[sent] = clock() - began
            sent += 1
    elapsed = (clock() - start) / 1e9
    usage = resource.getrusage(resource.RUSAGE_SELF)
    ordered = sorted(durations)
    return {
        "sent": sent,
        "seconds": elapsed,
        "send_ns": {
            "p50": ordered[len(ordered) // 2],
            "p99": ordered[int(len(ordered) * 0.99)],
            "max": ordered[-1],
        },
        # The whole process (Daphne's event loop included), in cores used over the run.
        "cpu": (usage.ru_utime + usage.ru_stime - usage_before.ru_utime - usage_before.ru_stime)
        / elapsed,
        "dropped": _dropped(),
    }


def _dropped() -> int:
    """Events this process dropped before they reached a channel layer, ever."""
    from signal_dashboard.backends.redis.publisher import Publisher
    from signal_dashboard.record.broadcast import broadcaster

    publisher = Publisher.current
    return publisher.dropped if publisher is not None else broadcaster.dropped


def produce_view(request: HttpRequest) -> JsonResponse:
    rate, seconds = float(request.GET["rate"]), float(request.GET["seconds"])
    result: dict[str, Any] = {}
    # A thread of its own: sends made here belong to no request, as a worker's would not.
    producer = threading.Thread(
        target=lambda: result.update(produce(rate, seconds)), name="bench-producer"
    )
    producer.start()
    producer.join()
    return JsonResponse(result)


def ready_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ready")


def __getattr__(name: str) -> Any:
    # The URLs and the ASGI application import models, and this module is the settings: they
    # are made when first asked for (after django.setup()), not on import.
    if name == "urlpatterns":
        value: Any = [
            path("produce/", produce_view),
            path("ready/", ready_view),
            path("signals/", include("signal_dashboard.urls")),
        ]
    elif name == "application":
        from channels.routing import ProtocolTypeRouter
        from django.core.asgi import get_asgi_application

        from signal_dashboard.routing import websocket_application

        value = ProtocolTypeRouter(
            {"http": get_asgi_application(), "websocket": websocket_application}
        )
    else:
        raise AttributeError(name)
    globals()[name] = value
    return value
