"""Task runs in real worker processes (django-tasks-db's db_worker, a Celery worker),
publishing through the tests' Redis, their tasks enqueued by a request to a Daphne server that
serves the dashboard."""

from __future__ import annotations

import html
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery

from signal_dashboard.integrations.testing.processes import http_get
from signal_dashboard.integrations.testing.redis_server import RedisServer
from tests.processes import CeleryWorker, DaphneServer, run_command, session_cookie

pytestmark = pytest.mark.redis

TASK = "signal_dashboard.demo.pizzeria.tasks.bake_in_oven"
# How long the worker's events may take to reach Redis after it exits (it flushes on exit).
EVENT_TIMEOUT = 15.0
MAKE_ORDER = (
    "from signal_dashboard.demo.pizzeria.models import Order, Pizza; "
    "pizza = Pizza.objects.create(name='Diavola', price='11.50'); "
    "print(Order.objects.create(pizza=pizza, quantity=2, customer_name='Ken').pk)"
)
ROW = re.compile(r'<tr class="sd-row.*?</tr>', re.DOTALL)


def _page(url: str, session_key: str) -> str:
    request = urllib.request.Request(url, headers={"Cookie": f"sessionid={session_key}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def _stream_rows(page: str) -> list[str]:
    return [html.unescape(row) for row in ROW.findall(page)]


def _request_rows(page: str) -> list[str]:
    body = page.split('id="sd-request-rows"')[1].split("</tbody>")[0]
    return [html.unescape(row) for row in re.findall(r"<tr.*?</tr>", body, re.DOTALL)]


def _signal(row: str) -> str:
    return re.search(r'data-signal="[^"]*\.([^".]+)"', row).group(1)  # type: ignore[union-attr]


def _wait_for(read: Callable[[], list[str]], enough: Callable[[list[str]], bool]) -> list[str]:
    """What ``read()`` gives once ``enough`` of it is there (what there is at EVENT_TIMEOUT)."""
    deadline = time.monotonic() + EVENT_TIMEOUT
    while True:
        found = read()
        if enough(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.fixture
def order_id(project_db: Path, redis_server: RedisServer) -> int:
    made = run_command(["shell", "-c", MAKE_ORDER], project_db, redis_server.url)
    assert made.returncode == 0, made.stderr
    return int(made.stdout.split()[-1])


@pytest.fixture
def session_key(project_db: Path, redis_server: RedisServer) -> str:
    return session_cookie(project_db, redis_server.url, "staff", "password")


@pytest.fixture
def server(project_db: Path, redis_server: RedisServer) -> Iterator[DaphneServer]:
    with DaphneServer(project_db, redis_server.url) as server:
        yield server


def test_a_db_worker_runs_the_task_a_request_enqueued_and_the_dashboard_links_them(
    project_db: Path,
    redis_server: RedisServer,
    order_id: int,
    session_key: str,
    server: DaphneServer,
) -> None:
    status, task_id = http_get(f"{server.url}/tasks/bake/{order_id}/")
    assert status == 200
    worker = run_command(
        ["db_worker", "--batch", "--no-startup-delay"], project_db, redis_server.url
    )
    assert worker.returncode == 0, worker.stderr
    rows = _wait_for(
        lambda: _stream_rows(_page(f"{server.url}/signals/?task={task_id}", session_key)),
        lambda found: "post_save" in map(_signal, found),
    )
    runs = _wait_for(
        lambda: _request_rows(_page(f"{server.url}/signals/?kind=task", session_key)), bool
    )
    requests = _request_rows(_page(f"{server.url}/signals/?path=/tasks/", session_key))
    run_key = re.search(r'data-id="([^"]+)"', runs[0]).group(1)  # type: ignore[union-attr]
    request_key = re.search(r'data-id="([^"]+)"', requests[0]).group(1)  # type: ignore[union-attr]
    enqueuer = html.unescape(_page(f"{server.url}/signals/requests/{request_key}/", session_key))
    waterfall = _page(f"{server.url}/signals/requests/{run_key}/", session_key)
    waterfall = html.unescape(waterfall).replace("<wbr>", "")
    # The task's sends name it, and what enqueued it: task_enqueued, sent where it was
    # enqueued (the server), and every send of its run, made by the worker.
    assert set(map(_signal, rows)) == {
        "task_enqueued",
        "task_started",
        "pre_save",
        "post_save",
        "pizza_done",
        "task_finished",
    }
    for row in rows:
        assert f"task {TASK} {task_id}, enqueued by GET /tasks/bake/{order_id}/" in row
        assert (f":{server.pid}</span>" in row) is (_signal(row) == "task_enqueued")
    # The Requests tab: the run, made by the worker, with its outcome and what enqueued it,
    # linked to its sends in the stream (its waterfall is the worker's)...
    [run] = runs
    assert "sd-remote" in run
    assert run_key.split(":")[1] != str(server.pid)  # opened by its process and id
    assert "tasks.bake_in_oven" in run
    assert f"by GET /tasks/bake/{order_id}/" in run
    assert "successful" in run
    assert f":{server.pid}<" not in run
    # Its waterfall, from what Redis has of it: its sends (task_enqueued was the server's),
    # each receiver under its send, and what enqueued it.
    assert f"<h2>task {TASK}</h2>" in waterfall
    assert 'enqueued by <a href="#requests/' in waterfall
    assert f'">GET /tasks/bake/{order_id}/</a>' in waterfall  # the server's own request
    bars = re.findall(r'data-kind="(send|receiver)"', waterfall)
    sends = re.findall(r'hx-get="/signals/events/[^"?]+\?h=[^"]+" [^>]*>([^<]+)</a>', waterfall)
    assert len(sends) == bars.count("send")
    # The body's saves and pizza_done, then the worker saving the result (pre_save of
    # django-tasks-db's DBTaskResult), in the order they were sent.
    assert [send.rpartition(".")[2] for send in sends] == [
        "task_started",
        "post_save",
        "pizza_done",
        "pre_save",
        "task_finished",
    ]
    assert "signals.announce_pizza" in waterfall  # a receiver of pizza_done
    assert "of its sends are no longer in the buffer" not in waterfall
    assert f'<a href="/signals/?task={task_id}">its sends in the stream</a>' in waterfall
    # ... and the request that enqueued it, the server's own, counting the task.
    [request] = requests
    assert f"GET /tasks/bake/{order_id}/" in request
    assert "· 1 task" in request
    assert "sd-remote" not in request
    # Its waterfall lists the task, linked to the worker's run.
    assert "Tasks it enqueued" in enqueuer
    assert f'<a href="#requests/{run_key}">' in enqueuer


CELERY_TASK = "tests.celery_app.bake"
BURN = "from tests.celery_app import burn; print(burn.delay({order_id}).id)"


def test_a_celery_worker_runs_a_task_a_request_called_and_each_retry_is_a_run(
    project_db: Path,
    redis_server: RedisServer,
    order_id: int,
    session_key: str,
    server: DaphneServer,
) -> None:
    with CeleryWorker(project_db, redis_server.url) as worker:
        status, task_id = http_get(f"{server.url}/celery/bake/{order_id}/?fail_first=1")
        assert status == 200
        runs = _wait_for(
            lambda: _request_rows(_page(f"{server.url}/signals/?kind=task", session_key)),
            lambda found: sum("sd-remote" in row for row in found) >= 2,
        )
        rows = _stream_rows(_page(f"{server.url}/signals/?task={task_id}", session_key))
        # Results and exceptions are the tasks' own, read back from Celery's result backend.
        results = Celery(broker=redis_server.url, backend=redis_server.url)
        assert results.AsyncResult(task_id).get(timeout=EVENT_TIMEOUT) == (
            f"baked order #{order_id}"
        )
        burn = BURN.format(order_id=order_id)
        burnt = run_command(["shell", "-c", burn], project_db, redis_server.url)
        assert burnt.returncode == 0, burnt.stderr
        with pytest.raises(ValueError, match=f"the oven burnt order #{order_id}"):
            results.AsyncResult(burnt.stdout.split()[-1]).get(timeout=EVENT_TIMEOUT)
        worker_log = worker.output()
    # The body's Django signals name the Celery task run and the request that called .delay().
    assert "post_save" in map(_signal, rows), worker_log
    for row in rows:
        assert f"task {CELERY_TASK} {task_id}, enqueued by GET /celery/bake/{order_id}/" in row
        assert f":{server.pid}</span>" not in row  # the worker's
    # Two runs: the first retried, the second succeeded; both enqueued by the request.
    runs = [row for row in runs if CELERY_TASK.rpartition(".")[2] in row]
    assert len(runs) == 2, worker_log
    assert all(f"by GET /celery/bake/{order_id}/" in row for row in runs)
    retried = 'retry</span>: <span class="sd-error-text">RuntimeError: the oven is not hot yet'
    assert any(retried in row for row in runs), runs
    assert any(">success<" in row for row in runs), runs
