"""The demo pizzeria: its receivers, every button through real HTTP, and ``manage.py demo``."""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import URLResolver, include, path
from pytest_django.live_server_helper import LiveServer

from signal_dashboard.demo.pizzeria import signals
from signal_dashboard.demo.pizzeria.models import Order, Pizza, Topping
from signal_dashboard.demo.pizzeria.signals import TICKETS, print_kitchen_tickets
from signal_dashboard.demo.pizzeria.traffic import ACTIONS, TrafficGenerator

ROOT = Path(__file__).resolve().parent.parent
DEMO_TIMEOUT = 60

# The shop alone, for tests marked with this module as their URLconf.
urlpatterns: list[URLResolver] = [path("", include("signal_dashboard.demo.pizzeria.urls"))]


@pytest.mark.django_db
def test_pizza_done_returns_the_oven_fire_and_the_async_result() -> None:
    pizza = Pizza.objects.create(name="Margherita", price=Decimal("8.50"))
    pizza.toppings.set([Topping.objects.create(name="basil"), Topping.objects.create(name="ham")])
    toppings = [topping.name for topping in pizza.toppings.all()]

    results = dict(signals.pizza_done.send_robust(sender=Pizza, toppings=toppings, size="large"))

    error = results[signals.check_oven]
    assert isinstance(error, RuntimeError)
    assert str(error) == "oven on fire"
    assert results[signals.announce_pizza] == "large pizza with 2 toppings is ready"


def press_every_button(traffic: TrafficGenerator) -> None:
    """Press each button once, in ACTIONS' order; the background bake last, on an order
    placed for it (the bake button took the first)."""
    for action in ACTIONS:
        if action != "bake_later":
            assert traffic.step(action) == action
    assert traffic.step("place_order") == "place_order"
    assert traffic.step("bake_later") == "bake_later"


@pytest.mark.urls(__name__)
def test_every_button_works_over_http(live_server: LiveServer) -> None:
    User.objects.create_user("demo", password="demo", is_staff=True)
    for name in ("mozzarella", "basil", "ham"):
        Topping.objects.create(name=name)
    auth_events_before = signals.auth_events.copy()
    traffic = TrafficGenerator(live_server.url)

    press_every_button(traffic)

    assert traffic.stats.failed == 0
    # The home page, then the button; one more order placed, for the background bake.
    assert traffic.stats.requests == 2 * (len(ACTIONS) + 1)
    assert traffic.stats.actions == Counter([*ACTIONS, "place_order"])
    # bake_batch made the second pizza and three baked orders; the first order was deleted;
    # the last was baked by a task.
    assert Pizza.objects.count() == 2
    assert list(Order.objects.values_list("status", flat=True)) == ["baked"] * 4
    assert signals.auth_events - auth_events_before == Counter(
        logged_in=1, logged_out=1, login_failed=1
    )


def test_traffic_only_goes_to_this_machine() -> None:
    with pytest.raises(ValueError, match="only goes to this machine"):
        TrafficGenerator("http://example.com/")


def _start_demo(tmp_path: Path, port: int, *options: str) -> subprocess.Popen[str]:
    """``manage.py demo`` on ``port``, with a database of its own."""
    env = {
        **os.environ,
        # pytest-django has set the test settings here; the demo must use its own.
        "DJANGO_SETTINGS_MODULE": "signal_dashboard.demo.settings",
        "DEMO_DATABASE": str(tmp_path / "demo.sqlite3"),
    }
    command = [sys.executable, "manage.py", "demo", "--port", str(port), *options]
    # A session of its own, so that daphne can be found (and killed) with it.
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_demo_command_serves_the_shop_with_traffic_and_stops(tmp_path: Path) -> None:
    port = _free_port()
    demo = _start_demo(tmp_path, port, "--duration", "8")
    try:
        output, _ = demo.communicate(timeout=DEMO_TIMEOUT)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.communicate()

    assert demo.returncode == 0, output
    assert f"http://127.0.0.1:{port}/signals/" in output
    summary = re.search(r"^demo traffic: (\d+) requests, (\d+) failed$", output, re.MULTILINE)
    assert summary is not None, output
    assert int(summary[1]) > 0
    assert summary[2] == "0", output
    with pytest.raises(ProcessLookupError):  # daphne is gone too
        os.killpg(demo.pid, 0)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


SHOW_FINDINGS = """
from signal_dashboard.capture.context import Origin, current_origin
from signal_dashboard.demo.pizzeria import mistakes
from signal_dashboard.record.recorder import recorder
login = Origin(kind="request", name="POST /login/", method="POST", path="/login/")
token = current_origin.set(login)
mistakes.connect_in_the_login_view()  # as the login view does, and leaves connected
current_origin.reset(token)
recorder.record(login)  # the request ends
recorder.drain()
for finding in recorder.findings:
    print(finding.kind, finding.receiver)
"""


def test_the_demo_makes_its_signal_mistakes_for_the_dashboard_to_show(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "signal_dashboard.demo.settings",
        "DEMO_DATABASE": str(tmp_path / "demo.sqlite3"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "django", "shell", "-c", SHOW_FINDINGS],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    kinds = ("lost ", "doubled ", "connected ", "disconnect_missed ")
    findings = [line for line in result.stdout.splitlines() if line.startswith(kinds)]
    prefix = "signal_dashboard.demo.pizzeria"
    assert findings == [
        f"lost {prefix}.mistakes.connect_a_receiver_that_gets_lost.<locals>.tell_the_waiter",
        f"doubled {prefix}.kitchen_display.update_kitchen_display",
        f"connected {prefix}.mistakes.greet_user",
    ]


@contextlib.contextmanager
def _running_demo(tmp_path: Path, port: int) -> Iterator[list[str]]:
    """The demo serving on ``port`` (no traffic of its own): yields its output up to the
    dashboard's URL, and stops it."""
    demo = _start_demo(tmp_path, port, "--no-traffic", "--duration", str(DEMO_TIMEOUT))
    try:
        assert demo.stdout is not None
        output = []
        for line in demo.stdout:
            output.append(line)
            if line.startswith("Signal dashboard:"):
                break
        yield output
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.communicate(timeout=DEMO_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.communicate()


def test_the_demo_starts_with_its_three_mistakes_and_no_other_finding(tmp_path: Path) -> None:
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    with _running_demo(tmp_path, port) as output:
        traffic = TrafficGenerator(base_url)
        press_every_button(traffic)  # every page of the shop, the login view among them
        with _signed_in(base_url).open(f"{base_url}/signals/events.ndjson", timeout=10) as got:
            assert got.status == 200
            records = [json.loads(line) for line in got.read().decode().splitlines() if line]

    assert "The signal_dashboard.W005 warning is on purpose" in "".join(output)
    kinds = {"lost", "doubled", "connected", "disconnect_missed"}
    findings = sorted(
        (record["type"], record["receiver"]) for record in records if record.get("type") in kinds
    )
    prefix = "signal_dashboard.demo.pizzeria"
    assert findings == [
        ("connected", f"{prefix}.mistakes.greet_user"),
        ("doubled", f"{prefix}.kitchen_display.update_kitchen_display"),
        ("lost", f"{prefix}.mistakes.connect_a_receiver_that_gets_lost.<locals>.tell_the_waiter"),
    ]


def test_the_demos_kitchen_tickets_show_their_n_plus_one(tmp_path: Path) -> None:
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    with _running_demo(tmp_path, port):
        traffic = TrafficGenerator(base_url)
        for _ in range(4):  # 12 orders: as many tickets, each loading its pizza on its own
            assert traffic.step("bake_batch") == "bake_batch"
        browser = _signed_in(base_url)
        with browser.open(f"{base_url}/signals/events.ndjson", timeout=10) as got:
            records = [json.loads(line) for line in got.read().decode().splitlines() if line]
        with browser.open(f"{base_url}/signals/stats.json", timeout=10) as got:
            stats = json.loads(got.read().decode())

    receiver = "signal_dashboard.demo.pizzeria.signals.print_kitchen_tickets"
    repeated = [
        record
        for record in records
        if record.get("type") == "query_repeated" and record["receiver"] == receiver
    ]
    assert repeated, [record.get("type") for record in records]
    assert repeated[-1]["count"] == TICKETS
    assert repeated[-1]["statement"].startswith("SELECT ")
    assert '"pizzeria_pizza"' in repeated[-1]["statement"]
    assert repeated[-1]["locations"][0].endswith(f"signals.py:{_line_of(print_kitchen_tickets)}")
    # Each ticket's query is in the receiver's detail, and in the latency table.
    sends = [
        record
        for record in records
        if record.get("signal", "").endswith("pizza_done") and "receivers" in record
    ]
    [tickets] = [call for call in sends[-1]["receivers"] if call["receiver"] == receiver]
    assert tickets["queries"]["count"] == 1 + TICKETS  # the orders, then a pizza per order
    [row] = [row for row in stats["receivers"] if row["name"] == receiver]
    assert row["queries_max"] == 1 + TICKETS


def _line_of(function: Callable[..., Any]) -> int:
    return function.__code__.co_firstlineno


def test_a_dashboard_stays_signed_in_when_the_demo_restarts(tmp_path: Path) -> None:
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    with _running_demo(tmp_path, port):
        browser = _signed_in(base_url)
    # The same database, started again.
    with _running_demo(tmp_path, port), browser.open(f"{base_url}/signals/", timeout=10) as page:
        assert page.status == 200
        assert page.url == f"{base_url}/signals/"  # not sent to the login page


def _signed_in(base_url: str) -> urllib.request.OpenerDirector:
    """A browser of the demo's staff user, signed in (its session in a cookie jar)."""
    from signal_dashboard.demo.pizzeria.views import DEMO_PASSWORD, DEMO_USERNAME

    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    login_url = f"{base_url}/admin/login/?next=/signals/"
    page = opener.open(login_url, timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    form = {"csrfmiddlewaretoken": token[1], "username": DEMO_USERNAME, "password": DEMO_PASSWORD}
    with opener.open(login_url, urllib.parse.urlencode(form).encode(), timeout=10) as signed_in:
        assert signed_in.url.endswith("/signals/")
    return opener
