"""Task runs in a real worker process: django-tasks-db's db_worker, publishing through the
tests' Redis, its task enqueued by a request to a Daphne server that serves the dashboard."""

from __future__ import annotations

import html
import re
import time
import urllib.request
from pathlib import Path

import pytest

from signal_dashboard.testing.processes import http_get
from signal_dashboard.testing.redis_server import RedisServer
from tests.processes import DaphneServer, run_command, session_cookie

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


def test_a_worker_runs_the_task_a_request_enqueued_and_the_dashboard_links_them(
    project_db: Path, redis_server: RedisServer
) -> None:
    made = run_command(["shell", "-c", MAKE_ORDER], project_db, redis_server.url)
    assert made.returncode == 0, made.stderr
    order_id = int(made.stdout.split()[-1])
    session_key = session_cookie(project_db, redis_server.url, "staff", "password")
    with DaphneServer(project_db, redis_server.url) as server:
        status, task_id = http_get(f"{server.url}/tasks/bake/{order_id}/")
        assert status == 200
        worker = run_command(
            ["db_worker", "--batch", "--no-startup-delay"], project_db, redis_server.url
        )
        assert worker.returncode == 0, worker.stderr
        deadline = time.monotonic() + EVENT_TIMEOUT
        while True:
            page = _page(f"{server.url}/signals/?task={task_id}", session_key)
            rows = [html.unescape(row) for row in ROW.findall(page)]
            names = {re.search(r'data-signal="([^"]+)"', row).group(1) for row in rows}  # type: ignore[union-attr]
            if "django.db.models.signals.post_save" in names or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    # The task's sends name it, and what enqueued it: task_enqueued, sent where it was
    # enqueued (the server), and every send of its run, made by the worker.
    assert {name.rpartition(".")[2] for name in names} == {
        "task_enqueued",
        "task_started",
        "pre_save",
        "post_save",
        "pizza_done",
        "task_finished",
    }
    for row in rows:
        assert f"task {TASK} {task_id}, enqueued by GET /tasks/bake/{order_id}/" in row
        made_here = f":{server.pid}</span>" in row
        assert made_here is (
            'data-signal="django.tasks.signals.task_enqueued"' in row
            or 'data-signal="django_tasks.signals.task_enqueued"' in row
        )
