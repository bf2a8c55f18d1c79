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
that thread: about what a drain takes at 5,000 sends a second. Like that thread, it reads the
tallies of folded sends only every ``TALLY_READ_INTERVAL`` of wall-clock time.

Our side runs twice: with every send in full detail, and "folded", with ``DETAIL_LIMIT`` at 0 so
that every send is folded into its tally (no event; each call counted in place).

The last cases are a whole request: ``POST /traffic/bake-batch/`` of the demo (the view
``bench/throughput.py`` loads: 10 traced sends, one receiver that raises, one with async
receivers), made in-process through Django's test client with the demo's middleware, on a
fresh SQLite database, with the receivers' stand-in sleeps skipped, in five setups (see
``REQUEST_SETUPS``): tracing off (the app installed but ``ENABLED`` off), on, on with 5
dashboards open, and the last two with the Redis transport (through a redis-server started
here; skipped with ``--no-redis``). The dashboards are ``WebsocketCommunicator`` sockets in the
child, served by the app's own consumer. The child does what a server's threads would do at
``REQUESTS_PER_SECOND``, by a clock it moves on by a request's share of a second each request:
every 100 ms (5 requests) it drains the recorder and flushes (the broadcaster's batch, or the
Redis publisher's batch and statistics), and the dashboards make their tables again every
second. Counted so, a flush carries as many events as it would under a server's load, however
slowly valgrind runs; the counts include everything the process does, on every thread.

Needs valgrind (Debian: ``apt-get install valgrind``). Takes about a minute per send case, and
two or three per request setup. ``--only sends``, ``--only queries`` or ``--only requests``
runs one part.

The query cases count a query made inside a request but outside any receiver, by the ORM and
through a cursor, with tracing off and on: what noting each query for its request costs.

The task cases (``--only tasks``) count a task run whose body sends nothing, on the
in-process backend and on django-tasks-db's database backend (enqueued, then run by its
worker, both in the child): the run itself, its three task signals' sends (each reaching the
tasks framework's logging receiver, with logging off; the database backend's saves send
theirs) and, on our side, tracing those sends and making the run an origin.
"""

from __future__ import annotations

import argparse
import functools
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
WARM_UP_TASKS = 200
TASK_CASES = (
    # (label, backend)
    ("in-process backend (enqueue runs it)", "immediate"),
    ("database backend: enqueued, run by its worker", "database"),
)
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

    # "folded": every send past DETAIL_LIMIT, so each is folded into its tally.
    detail_limit = 0 if side == "folded" else None
    settings.configure(
        DEBUG=False,
        INSTALLED_APPS=["signal_dashboard"],
        SIGNAL_DASHBOARD={"ENABLED": False, "DETAIL_LIMIT": detail_limit},
    )
    django.setup()
    from django.dispatch import Signal

    from signal_dashboard import tracing
    from signal_dashboard.capture.context import Origin, current_origin
    from signal_dashboard.record.recorder import recorder

    class Sender:
        pass

    signal = Signal()
    for index in range(receivers):
        # Distinct functions (code objects), as distinct receivers of a real project are.
        namespace: dict[str, object] = {}
        exec(f"def receiver_{index}(sender, **kwargs):\n    return None\n", namespace)
        signal.connect(namespace[f"receiver_{index}"], weak=False)
    if side in ("ours", "folded"):
        recorder.start = lambda: None  # type: ignore[method-assign]  # drained below instead
        tracing.install()
    floor_queue: deque[Any] = deque()
    if side == "floor":
        install_minimal_tracer(floor_queue)
    if in_request:
        current_origin.set(Origin(kind="request", name="GET /"))
    send = signal.send
    # As the recorder's thread drains: tallies (sends past DETAIL_LIMIT) read every
    # TALLY_READ_INTERVAL, events at every drain.
    drain = (
        floor_queue.clear if side == "floor" else functools.partial(recorder.drain, periodic=True)
    )
    for _ in range((WARM_UP + sends) // DRAIN_EVERY):
        for _ in range(DRAIN_EVERY):
            send(sender=Sender, size="large")
        drain()
    os._exit(0)  # the interpreter's teardown is the same for both sides: not counted


# The query cases: (label, what runs the query). Each runs in a request, outside any receiver.
QUERY_CASES = (
    ("query by the ORM (.exists() by primary key)", "orm"),
    ("query through a cursor (SELECT 1)", "cursor"),
)
WARM_UP_QUERIES = 500


def query_child(side: str, how: str, queries: int) -> None:
    """Queries made outside any receiver, on an in-memory SQLite database: what counting them
    for their request costs (signal_dashboard/capture/queries.py)."""
    sys.path.insert(0, str(REPO))
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        INSTALLED_APPS=["django.contrib.contenttypes", "signal_dashboard"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        SIGNAL_DASHBOARD={"ENABLED": False},
    )
    django.setup()
    from django.contrib.contenttypes.models import ContentType
    from django.core.management import call_command
    from django.db import connection

    from signal_dashboard import tracing
    from signal_dashboard.capture.context import Origin, current_origin
    from signal_dashboard.record.recorder import recorder

    call_command("migrate", verbosity=0)
    if side == "ours":
        recorder.start = lambda: None  # type: ignore[method-assign]
        tracing.install()
    current_origin.set(Origin(kind="request", name="GET /"))
    if how == "orm":
        for _ in range(WARM_UP_QUERIES + queries):
            ContentType.objects.filter(pk=1).exists()
    else:
        with connection.cursor() as cursor:
            for _ in range(WARM_UP_QUERIES + queries):
                cursor.execute("SELECT 1")
    os._exit(0)


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


# Setups of the request case: (label, tracing, Redis transport, dashboards open).
REQUEST_SETUPS = (
    ("off", False, False, 0),
    ("on", True, False, 0),
    ("on, 5 dashboards", True, False, 5),
    ("Redis", True, True, 0),
    ("Redis, 5 dashboards", True, True, 5),
)
# The pace bench/throughput.py's server keeps: about 50 requests a second, so a flush (every
# 100 ms) carries the events of 5 requests, and the tables are made again every 50.
REQUESTS_PER_SECOND = 50


def request_child(setup: str, requests: int) -> None:
    """Make ``WARM_UP_REQUESTS + requests`` requests of the demo's heaviest view, in ``setup``
    (one of ``REQUEST_SETUPS``), and deliver their events as a server at that pace would."""
    _, tracing_on, redis_on, dashboards = next(s for s in REQUEST_SETUPS if s[0] == setup)
    sys.path.insert(0, str(REPO))
    work = tempfile.mkdtemp(prefix="signal-bench-")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.demo_settings",
        DEMO_DATABASE=os.path.join(work, "demo.sqlite3"),
        BENCH_TRACING="on" if tracing_on else "off",
        # A database of its own: the run without timed requests goes alongside.
        BENCH_REDIS_URL=f"{os.environ['BENCH_CHILD_REDIS_URL']}/{1 + bool(requests)}"
        if redis_on
        else "",
    )
    import asyncio
    import time

    import django

    from signal_dashboard.backends.redis import history, relay
    from signal_dashboard.backends.redis import publisher as publishing
    from signal_dashboard.record import broadcast
    from signal_dashboard.record.recorder import recorder

    # No thread runs on a timer of its own: this child drains, flushes and publishes below, at
    # the pace of a server, by a clock it moves on by a request's share of a second each request.
    clock = types.SimpleNamespace(now=1000.0)
    virtual_time = types.SimpleNamespace(monotonic=lambda: clock.now, time=time.time)
    for module in (broadcast, publishing, history):
        module.time = virtual_time  # type: ignore[attr-defined]
    recorder.start = lambda: None  # type: ignore[method-assign]
    publishing.Publisher.start = lambda self: setattr(  # type: ignore[method-assign]
        self, "_unsubscribe", recorder.subscribe(self)
    )

    async def no_flushes() -> None:
        await asyncio.Event().wait()

    broadcast.broadcaster._run = no_flushes  # type: ignore[method-assign]
    django.setup()
    from channels.testing import WebsocketCommunicator
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from bench.demo_waits import skip_demo_waits
    from signal_dashboard.web import consumers, fragments

    consumers.time = virtual_time  # type: ignore[attr-defined]
    fragments.time = virtual_time  # type: ignore[attr-defined]
    skip_demo_waits()
    call_command("migrate", verbosity=0)
    staff = get_user_model().objects.create_user("bench", is_staff=True)
    loop = asyncio.new_event_loop()
    sockets: list[WebsocketCommunicator] = []
    publish = None
    if redis_on:
        publish = loop.run_until_complete(_publishing())
    delivered = asyncio.Event()

    async def open_dashboards() -> None:
        for _ in range(dashboards):
            socket = WebsocketCommunicator(consumers.DashboardConsumer.as_asgi(), "/ws/signals/")
            socket.scope["user"] = staff
            connected, _ = await socket.connect()
            if not connected:
                raise RuntimeError("a dashboard socket was refused")
            sockets.append(socket)
        if redis_on and dashboards:
            # Handed each batch after the dashboards: once it has one, they all have.
            async def note(batch: Any) -> None:
                delivered.set()

            await relay.relay.attach(note)

    async def deliver() -> None:
        if publish is not None:
            delivered.clear()
            await publish()
            if dashboards:
                await delivered.wait()
        elif dashboards:
            await broadcast.broadcaster.flush()
        fanout = relay.relay if redis_on else broadcast.broadcaster
        for receiver in fanout.receivers:
            consumer = getattr(receiver, "__self__", None)  # a DashboardConsumer's deliver()
            if consumer is not None and consumer.tables_refresh is not None:
                await consumer.tables_refresh  # the tables, made on a worker thread
        for socket in sockets:
            while not socket.output_queue.empty():
                socket.output_queue.get_nowait()  # what the page would have been sent

    loop.run_until_complete(open_dashboards())
    random.seed(0)  # the view picks names and sizes at random: the same ones on every side
    client = Client(HTTP_HOST="localhost")  # one of the demo's ALLOWED_HOSTS
    per_flush = round(REQUESTS_PER_SECOND * broadcast.FLUSH_INTERVAL)
    for index in range(WARM_UP_REQUESTS + requests):
        client.cookies.clear()  # as a load generator, which keeps no messages cookie
        response = client.post(REQUEST_PATH)
        if response.status_code != 302:
            raise RuntimeError(f"POST {REQUEST_PATH} answered {response.status_code}")
        clock.now += 1 / REQUESTS_PER_SECOND
        if (index + 1) % per_flush == 0:
            recorder.drain()
            loop.run_until_complete(deliver())
    shutil.rmtree(work)  # the same on every side, so not counted
    os._exit(0)


async def _publishing() -> Any:
    """What the Redis publisher's thread does every flush, as a coroutine to await instead."""
    from signal_dashboard.backends.redis import publisher as publishing

    publisher = publishing.start_publisher()
    layer, client, append = publisher._connections()
    await client.flushdb()  # what another run left

    async def publish() -> None:
        await publisher._attempt(layer, client, append)
        if publisher.error:
            raise RuntimeError(f"publishing failed: {publisher.error}")

    return publish


def noop_task() -> None:
    """The task the task cases run: no body, no signal of its own."""


def task_child(side: str, backend: str, tasks: int) -> None:
    """Task runs whose body sends nothing: on the in-process backend (``immediate``: Django 6's
    tasks framework, or the backport on 5.2), or enqueued to django-tasks-db's database backend
    (``database``, SQLite in memory) and run by its worker, in this process."""
    sys.path.insert(0, str(REPO))
    import importlib.util

    import django
    from django.conf import settings

    module = "django.tasks" if importlib.util.find_spec("django.tasks") else "django_tasks"
    on_database = backend == "database"
    settings.configure(
        DEBUG=False,
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "signal_dashboard",
            *([] if module == "django.tasks" else ["django_tasks"]),
            *(["django_tasks_db"] if on_database else []),
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        TASKS={
            "default": {
                "BACKEND": "django_tasks_db.DatabaseBackend"
                if on_database
                else f"{module}.backends.immediate.ImmediateBackend"
            }
        },
        LOGGING_CONFIG=None,
        SIGNAL_DASHBOARD={"ENABLED": False},
    )
    django.setup()
    import logging

    from django.core.management import call_command

    from signal_dashboard import tracing
    from signal_dashboard.record.recorder import recorder

    logging.disable(logging.CRITICAL)  # the tasks framework logs every run
    task = importlib.import_module(module).task()(noop_task)
    # The worker finds the task by its function's path: the task must be what is there.
    sys.modules[noop_task.__module__].noop_task = task  # type: ignore[attr-defined]
    if on_database:
        call_command("migrate", verbosity=0)
    if side == "ours":
        recorder.start = lambda: None  # type: ignore[method-assign]
        tracing.install()

    def run(count: int) -> None:
        for done in range(count):
            task.enqueue()
            if side == "ours" and done % DRAIN_EVERY == 0:
                recorder.drain()
        if on_database:
            from django_tasks_db.management.commands.db_worker import Worker

            worker_options = {"queue_names": ["default"], "backend_name": "default"}
            Worker(
                **worker_options,
                interval=0,
                batch=True,
                startup_delay=False,
                max_tasks=None,
                worker_id="bench",
                excluded_queue_names=[],
            ).run()
        if side == "ours":
            recorder.drain()

    run(WARM_UP_TASKS)
    run(tasks)
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
    parser.add_argument("--query-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--task-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--tasks", type=int, default=1000, help="timed task runs")
    parser.add_argument("--queries", type=int, default=2000, help="timed queries per case")
    parser.add_argument(
        "--only",
        choices=("sends", "requests", "queries", "tasks"),
        help="run only the sends, the request, the query or the task cases",
    )
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis transport")
    args = parser.parse_args()
    if args.child:
        side, receivers, in_request, sends = args.child
        child(side, int(receivers), bool(int(in_request)), int(sends))
        return
    if args.request_child:
        side, requests = args.request_child
        request_child(side, int(requests))
        return
    if args.query_child:
        side, how, queries = args.query_child
        query_child(side, how, int(queries))
        return
    if args.task_child:
        side, backend, tasks = args.task_child
        task_child(side, backend, int(tasks))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    if args.only in (None, "sends"):
        print_sends(args.sends)
    if args.only in (None, "queries"):
        print_queries(args.queries)
    if args.only in (None, "tasks"):
        print_tasks(args.tasks)
    if args.only in (None, "requests"):
        print_requests(args.requests, with_redis=not args.no_redis)


def print_tasks(tasks: int) -> None:
    print_cases(
        f"instructions per task run over {tasks} runs, the body sending nothing",
        tasks,
        "--task-child",
        TASK_CASES,
    )


def print_queries(queries: int) -> None:
    print_cases(
        f"instructions per query over {queries} queries outside receivers",
        queries,
        "--query-child",
        QUERY_CASES,
    )


def print_cases(what: str, count: int, child: str, cases: tuple[tuple[str, str], ...]) -> None:
    """A table of vanilla against ours, per unit, for each (label, child argument) case."""
    import django

    print(f"Python {platform.python_version()}, Django {django.get_version()}, {what} (callgrind)")
    header = f"{'case':<48}{'vanilla':>10}{'ours':>10}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    for label, how in cases:
        vanilla, ours = (per_unit(count, child, side, how) for side in ("vanilla", "ours"))
        print(f"{label:<48}{vanilla:>10.0f}{ours:>10.0f}{ours / vanilla:>8.2f}")
    print()


def print_sends(sends: int) -> None:
    import django

    sends = max(1, round(sends / DRAIN_EVERY)) * DRAIN_EVERY
    print(
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"instructions per send over {sends} sends (callgrind)"
    )
    header = f"{'case':<44}{'vanilla':>10}"
    header += "".join(f"{name:>10}{'ratio':>8}" for name in ("ours", "folded", "floor"))
    print(header)
    print("-" * len(header))
    for label, receivers, in_request in CASES:
        vanilla, *others = (
            per_send(side, receivers, in_request, sends)
            for side in ("vanilla", "ours", "folded", "floor")
        )
        print(
            f"{label:<44}{vanilla:>10.0f}"
            + "".join(f"{n:>10.0f}{n / vanilla:>8.2f}" for n in others)
        )
    print("ours: every send in full detail; folded: every send past DETAIL_LIMIT (no event)")
    print("floor: a minimal tracer, timing each receiver and nothing more (see its docstring)")
    print()


def print_requests(requests: int, with_redis: bool) -> None:
    from contextlib import ExitStack

    setups = [s for s in REQUEST_SETUPS if with_redis or not s[2]]
    with ExitStack() as stack:
        if any(redis_on for _, _, redis_on, _ in setups):
            if shutil.which("redis-server") is None:
                print("redis-server is not installed: the Redis transport is skipped")
                setups = [s for s in setups if not s[2]]
            else:
                sys.path.insert(0, str(REPO))
                from signal_dashboard.integrations.testing.redis_server import RedisServer

                url = stack.enter_context(RedisServer()).url
                os.environ["BENCH_CHILD_REDIS_URL"] = url.rsplit("/", 1)[0]
        print(
            f"instructions per request of POST {REQUEST_PATH} (demo) over {requests} requests, "
            f"{REQUESTS_PER_SECOND} a second"
        )
        print(f"{'setup':<44}{'instructions':>14}{'ratio':>8}")
        print("-" * 66)
        off = None
        for label, *_ in setups:
            count = per_unit(requests, "--request-child", label)
            off = off or count
            print(f"{label:<44}{count:>14.0f}{count / off:>8.2f}")


if __name__ == "__main__":
    main()
