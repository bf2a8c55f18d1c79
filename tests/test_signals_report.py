"""``pytest --signals``: pytest sessions of a small project, run here with pytester.

The project ("kitchen") has four receivers of its own: two that its tests run (one of them in a
storm), one connected to a signal its tests never send, one to a signal nobody sends.
"""

from __future__ import annotations

import json
import textwrap

import pytest

SIGNALS = """
from django.dispatch import Signal

order_placed = Signal()
kitchen_closed = Signal()
oven_lit = Signal()
"""

RECEIVERS = """
from django.dispatch import receiver

from kitchen.signals import kitchen_closed, order_placed, oven_lit


@receiver(order_placed)
def notify_chef(sender, **kwargs):
    return "noted"


@receiver(order_placed)
def count_order(sender, **kwargs):
    return 1


@receiver(kitchen_closed)
def clean_up(sender, **kwargs):
    return None


@receiver(oven_lit)
def warm_up(sender, **kwargs):
    return None
"""

APPS = """
from django.apps import AppConfig


class KitchenConfig(AppConfig):
    name = "kitchen"

    def ready(self):
        from kitchen import receivers  # noqa: F401
"""

SETTINGS = """
SECRET_KEY = "kitchen"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "signal_dashboard",
    "kitchen",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
# Tracing is off in the project's settings: --signals turns it on for the run.
SIGNAL_DASHBOARD = {"ENABLED": False, "STORM_THRESHOLD": 50}
"""

TESTS = """
import pytest
from django.contrib.auth.models import User

from kitchen.signals import order_placed


def test_one_order():
    assert order_placed.send(sender="till")[0][1] == "noted"


def test_rush_hour():
    for _ in range(60):
        order_placed.send(sender="till")


@pytest.mark.django_db
def test_with_the_database():
    assert User.objects.count() == 0
"""

OWN = "the project's own receivers"


@pytest.fixture
def kitchen(pytester: pytest.Pytester) -> pytest.Pytester:
    package = pytester.path / "kitchen"
    package.mkdir()
    for name, source in {
        "__init__.py": "",
        "signals.py": SIGNALS,
        "receivers.py": RECEIVERS,
        "apps.py": APPS,
    }.items():
        (package / name).write_text(textwrap.dedent(source))
    (pytester.path / "project_settings.py").write_text(SETTINGS)
    (pytester.path / "test_orders.py").write_text(TESTS)
    pytester.makeini("[pytest]\nDJANGO_SETTINGS_MODULE = project_settings\npythonpath = .\n")
    return pytester


def run(kitchen: pytest.Pytester, *args: str) -> pytest.RunResult:
    # --ds: this test session's DJANGO_SETTINGS_MODULE is in the environment the child inherits.
    return kitchen.runpytest_subprocess(
        "-p", "no:cacheprovider", "--ds=project_settings", *args, timeout=120
    )


def test_the_report_names_what_ran_what_never_did_and_the_storms(
    kitchen: pytest.Pytester,
) -> None:
    result = run(kitchen, "--signals", "--reuse-db")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=3)
    output = result.stdout.str()
    assert f"Receiver coverage: 50.0% (2 of 4 {OWN} ran)" in output
    result.stdout.fnmatch_lines(
        [
            "*signals*",
            "Receivers that never ran:",
            f"  kitchen.receivers.clean_up  {kitchen.path}/kitchen/receivers.py:17",
            f"  kitchen.receivers.warm_up  {kitchen.path}/kitchen/receivers.py:22",
            "Signals never sent:",
            f"  kitchen.signals.kitchen_closed  {kitchen.path}/kitchen/signals.py",
            f"  kitchen.signals.oven_lit  {kitchen.path}/kitchen/signals.py",
            "Slowest receivers (p50 / p95 / max, calls):",
            "  kitchen.receivers.* ms / * ms / * ms, 61",
            "  kitchen.receivers.* ms / * ms / * ms, 61",
            "Tests that sent the most signals:",
            "*  test_orders.py::test_with_the_database",  # migrations' signals, as Django sends
            "      60  test_orders.py::test_rush_hour",
            "       1  test_orders.py::test_one_order",
            "Storms (a receiver run more than 50 times in one test):",
            "  kitchen.receivers.* x60  in test_orders.py::test_rush_hour",
            "  kitchen.receivers.* x60  in test_orders.py::test_rush_hour",
        ]
    )
    # Django's own receivers (the database's, say) are counted only on request.
    assert "django.db" not in output.split("Receiver coverage")[1]
    everything = run(kitchen, "--signals", "--signals-all").stdout.str()
    counted = everything.split("Receiver coverage: ")[1].split("\n")[0]
    assert "all receivers ran" in counted
    assert not counted.endswith("(2 of 4 all receivers ran)")


def test_json_report_and_fail_under(kitchen: pytest.Pytester) -> None:
    report = kitchen.path / "signals.json"
    failed = run(kitchen, f"--signals-json={report}", "--signals-fail-under=60")
    assert failed.ret == pytest.ExitCode.TESTS_FAILED
    failed.assert_outcomes(passed=3)  # every test passed: the coverage failed the run
    failed.stdout.fnmatch_lines(["Receiver coverage 50.0% is below --signals-fail-under=60"])
    data = json.loads(report.read_text())
    assert (data["receivers_ran"], data["receivers_connected"]) == (2, 4)
    assert data["coverage_percent"] == 50.0
    assert [item["receiver"] for item in data["never_ran"]] == [
        "kitchen.receivers.clean_up",
        "kitchen.receivers.warm_up",
    ]
    assert {item["calls"] for item in data["slowest"]} == {61}
    assert {"test": "test_orders.py::test_rush_hour", "sends": 60} in data["busiest_tests"]
    assert len(data["storms"]) == 2
    passed = run(kitchen, "--signals-fail-under=50")
    assert passed.ret == pytest.ExitCode.OK
    passed.stdout.fnmatch_lines(["Receiver coverage 50.0% is at or above --signals-fail-under=50"])


def test_xdist_workers_figures_are_merged(kitchen: pytest.Pytester) -> None:
    report = kitchen.path / "signals.json"
    result = run(kitchen, "-n", "2", f"--signals-json={report}")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=3)
    data = json.loads(report.read_text())
    assert (data["receivers_ran"], data["receivers_connected"]) == (2, 4)
    # Both workers' sends: one test's on one worker, the other's on the other, or both on one.
    assert {item["calls"] for item in data["slowest"]} == {61}
    assert {item["test"] for item in data["busiest_tests"]} >= {
        "test_orders.py::test_rush_hour",
        "test_orders.py::test_one_order",
    }


def test_without_the_option_nothing_is_reported(kitchen: pytest.Pytester) -> None:
    result = run(kitchen)
    assert result.ret == pytest.ExitCode.OK
    assert "Receiver coverage" not in result.stdout.str()


def test_sends_folded_by_the_detail_limit_count_in_their_test(kitchen: pytest.Pytester) -> None:
    folded = SETTINGS.replace('"STORM_THRESHOLD": 50}', '"STORM_THRESHOLD": 50, "DETAIL_LIMIT": 2}')
    (kitchen.path / "folded_settings.py").write_text(folded)
    report = kitchen.path / "signals.json"
    result = run(kitchen, "--ds=folded_settings", f"--signals-json={report}")
    assert result.ret == pytest.ExitCode.OK
    assert "settings: folded_settings (from option)" in result.stdout.str()
    data = json.loads(report.read_text())
    assert {item["calls"] for item in data["slowest"]} == {61}
    assert {"test": "test_orders.py::test_rush_hour", "sends": 60} in data["busiest_tests"]
    assert sorted((storm["receiver"], storm["calls"]) for storm in data["storms"]) == [
        ("kitchen.receivers.count_order", 60),
        ("kitchen.receivers.notify_chef", 60),
    ]


HYGIENE_TESTS = """import gc

from kitchen.signals import order_placed


def test_a_receiver_that_gets_lost():
    def notify_waiter(sender, **kwargs):
        return None

    order_placed.connect(notify_waiter)
    del notify_waiter
    gc.collect()
    order_placed.disconnect(dispatch_uid="no-such-receiver")
"""


def test_signal_hygiene_is_reported_with_its_test(kitchen: pytest.Pytester) -> None:
    (kitchen.path / "test_hygiene_cases.py").write_text(HYGIENE_TESTS)
    result = run(kitchen, "--signals", "test_hygiene_cases.py")
    assert result.ret == pytest.ExitCode.OK
    where = f"{kitchen.path}/test_hygiene_cases.py"
    result.stdout.fnmatch_lines(
        [
            "Signal hygiene (see the dashboard's registry):",
            "  lost (garbage-collected while connected): "
            "test_hygiene_cases.test_a_receiver_that_gets_lost.<locals>.notify_waiter "
            f"on kitchen.signals.order_placed at {where}:10  "
            "in test_hygiene_cases.py::test_a_receiver_that_gets_lost",
            "  disconnect() removed nothing: dispatch_uid='no-such-receiver' "
            f"on kitchen.signals.order_placed at {where}:13  "
            "in test_hygiene_cases.py::test_a_receiver_that_gets_lost",
        ]
    )
