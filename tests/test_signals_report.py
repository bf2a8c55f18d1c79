"""``pytest --signals``: pytest sessions of a small project, run here with pytester.

The project ("kitchen") has four receivers of its own: two that its tests run (one of them in a
storm), one connected to a signal its tests never send, one to a signal nobody sends.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from signal_dashboard.capture.finding import Finding
from signal_dashboard.integrations.pytest_coverage import SignalCoverage
from signal_dashboard.integrations.pytest_report import BUSIEST_SHOWN, report_lines, summary

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
            "      60  test_orders.py::test_rush_hour",
            "       1  test_orders.py::test_one_order",
            "Set-up that sent the most signals (no test's):",
            # The test database created (migrations' signals, as Django sends them): set-up.
            "*  set-up of django_db_setup (session fixture)",
            "*  start-up (Django set-up, conftests, collection)",
            "Storms (a receiver run more than 50 times in one test):",
            "  kitchen.receivers.* x60  in test_orders.py::test_rush_hour",
            "  kitchen.receivers.* x60  in test_orders.py::test_rush_hour",
        ]
    )
    # Django's own receivers (the database's, say) are counted only on request.
    assert "django.db" not in output.split("Receiver coverage")[1]
    assert "Tracing started after Django was set up" not in output
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
    assert data["setup_storms"] == []
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
    assert {item["test"] for item in data["busiest_tests"]} == {
        "test_orders.py::test_rush_hour",
        "test_orders.py::test_one_order",
    }
    # The worker that ran the database test created the test database: set-up, no test's.
    [setup] = [item for item in data["busiest_setup"] if "django_db_setup" in item["setup"]]
    assert setup["setup"] == "set-up of django_db_setup (session fixture)"
    assert setup["sends"] > 100


def test_the_report_without_pytest_xdist(kitchen: pytest.Pytester) -> None:
    # Most projects do not install pytest-xdist, whose hooks pytest does not know then.
    result = run(kitchen, "-p", "no:xdist", "--signals")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([f"Receiver coverage: 50.0% (2 of 4 {OWN} ran)"])


def test_the_report_without_django_settings(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run with no settings to read: the report's own figures are read from DEFAULTS.
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    pytester.makepyfile(test_plain="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--signals", timeout=120)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([f"Receiver coverage: 100.0% (0 of 0 {OWN} ran)"])


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
    # Folded sends of the migrations (one command: its own detail limit) are placed in set-up.
    assert {item["test"] for item in data["busiest_tests"]} == {
        "test_orders.py::test_rush_hour",
        "test_orders.py::test_one_order",
    }


SETUP_TESTS = """import pytest

from kitchen.signals import kitchen_closed, order_placed


@pytest.fixture(scope="module")
def open_kitchen():
    for _ in range(60):
        order_placed.send(sender="prep")
    yield
    kitchen_closed.send(sender="prep")


# For a test outside a class, a class fixture is set up for that test alone: the test's.
@pytest.fixture(scope="class")
def order_pad():
    order_placed.send(sender="pad")


def test_first_order(open_kitchen):
    order_placed.send(sender="till")


def test_second_order(open_kitchen, order_pad):
    order_placed.send(sender="till")
"""


def test_sends_of_wider_fixtures_are_set_up_not_the_tests(kitchen: pytest.Pytester) -> None:
    (kitchen.path / "test_set_up.py").write_text(SETUP_TESTS)
    report = kitchen.path / "signals.json"
    result = run(kitchen, f"--signals-json={report}", "test_set_up.py")
    assert result.ret == pytest.ExitCode.OK
    data = json.loads(report.read_text())
    assert data["busiest_tests"] == [
        {"test": "test_set_up.py::test_second_order", "sends": 2},
        {"test": "test_set_up.py::test_first_order", "sends": 1},
    ]
    fixture = "open_kitchen (module fixture, test_set_up.py)"
    # Its teardown runs in the last test's teardown: charged to the fixture all the same.
    setup = {item["setup"]: item["sends"] for item in data["busiest_setup"]}
    assert (setup[f"set-up of {fixture}"], setup[f"teardown of {fixture}"]) == (60, 1)
    assert data["storms"] == []
    assert sorted((storm["receiver"], storm["calls"]) for storm in data["setup_storms"]) == [
        ("kitchen.receivers.count_order", 60),
        ("kitchen.receivers.notify_chef", 60),
    ]
    result.stdout.fnmatch_lines(
        [
            "Tests that sent the most signals:",
            "       2  test_set_up.py::test_second_order",
            "       1  test_set_up.py::test_first_order",
            "Set-up that sent the most signals (no test's):",
            f"      60  set-up of {fixture}",
            "*  start-up (Django set-up, conftests, collection)",  # models' class_prepared
            f"       1  teardown of {fixture}",
            "Storms in set-up (a receiver run more than 50 times in one):",
            f"  kitchen.receivers.* x60  in set-up of {fixture}",
            f"  kitchen.receivers.* x60  in set-up of {fixture}",
        ]
    )
    assert "Storms (a receiver run more than 50 times in one test)" not in result.stdout.str()


# A receiver of class_prepared, connected as the app is imported: it runs inside django.setup(),
# as each model class is made.
EARLY_RECEIVER = """
from django.db.models.signals import class_prepared


def note_model(sender, **kwargs):
    return None


class_prepared.connect(note_model)
"""


# The tests that need no database: creating one runs the migrations, which make (historical)
# models, and so send class_prepared again.
NO_DATABASE = ("-k", "not database")


@pytest.fixture
def early_kitchen(kitchen: pytest.Pytester) -> pytest.Pytester:
    (kitchen.path / "kitchen" / "early.py").write_text(EARLY_RECEIVER)
    (kitchen.path / "kitchen" / "apps.py").write_text(
        "from kitchen import early  # noqa: F401\n" + textwrap.dedent(APPS)
    )
    return kitchen


def test_receivers_that_run_as_django_is_set_up_are_seen(early_kitchen: pytest.Pytester) -> None:
    report = early_kitchen.path / "signals.json"
    result = run(early_kitchen, *NO_DATABASE, f"--signals-json={report}")
    assert result.ret == pytest.ExitCode.OK
    data = json.loads(report.read_text())
    assert (data["receivers_ran"], data["receivers_connected"]) == (3, 5)
    assert "kitchen.early.note_model" not in {item["receiver"] for item in data["never_ran"]}
    assert "kitchen.early.note_model" in {item["receiver"] for item in data["slowest"]}
    assert not data["started_late"]
    assert data["not_judged"] == []


# Loaded with -p, before pytest's plugins: Django is set up before tracing can start.
SET_UP_FIRST = """
import os

import django

os.environ["DJANGO_SETTINGS_MODULE"] = "project_settings"
django.setup()
"""


def test_receivers_of_sends_before_tracing_started_are_not_judged(
    early_kitchen: pytest.Pytester,
) -> None:
    (early_kitchen.path / "set_up_first.py").write_text(SET_UP_FIRST)
    report = early_kitchen.path / "signals.json"
    result = run(early_kitchen, *NO_DATABASE, "-p", "set_up_first", f"--signals-json={report}")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            f"Receiver coverage: 50.0% (2 of 4 {OWN} ran)",
            "Tracing started after Django was set up: receivers of the signals sent before "
            "then cannot be judged (those of class_prepared are not counted)",
            "Receivers that never ran:",
            "  kitchen.receivers.clean_up  *",
            "  kitchen.receivers.warm_up  *",
            "Receivers not judged (of class_prepared, sent before tracing started):",
            f"  kitchen.early.note_model  {early_kitchen.path}/kitchen/early.py:5",
        ]
    )
    data = json.loads(report.read_text())
    assert data["started_late"]
    assert "kitchen.early.note_model" not in {item["receiver"] for item in data["never_ran"]}
    everything = run(
        early_kitchen, *NO_DATABASE, "-p", "set_up_first", "--signals-all", "--signals"
    )
    output = everything.stdout.str()
    never_ran = output.split("Receivers that never ran:")[1].split("Receivers not judged")[0]
    assert "note_model" not in never_ran
    assert "django.db.models.signals.class_prepared" not in output


STORMY_SETTINGS_TESTS = """from django.core.signals import setting_changed


def test_settings_change_often():
    for _ in range(60):
        setting_changed.send(sender=None, setting="KITCHEN_HOURS", value=None, enter=True)
"""


def test_storms_and_slowest_receivers_are_the_projects_own_unless_all(
    kitchen: pytest.Pytester,
) -> None:
    (kitchen.path / "test_stormy.py").write_text(STORMY_SETTINGS_TESTS)
    own = run(kitchen, "--signals", "test_stormy.py")
    assert own.ret == pytest.ExitCode.OK
    report = own.stdout.str().split("Receiver coverage")[1]
    # Django's and signal_dashboard's receivers of setting_changed ran 60 times: not ours.
    assert "Storms" not in report
    assert "Slowest receivers" not in report
    everything = run(kitchen, "--signals", "--signals-all", "test_stormy.py")
    storms = everything.stdout.str().split(
        "Storms (a receiver run more than 50 times in one test):\n"
    )[1]
    assert (
        "signal_dashboard.conf._reset_config x60  in test_stormy.py::test_settings_change_often"
        in storms
    )
    assert "Slowest receivers" in everything.stdout.str()


HYGIENE_TESTS = """import gc

import pytest

from kitchen.signals import order_placed


@pytest.fixture(scope="module")
def tidy_kitchen():
    order_placed.disconnect(dispatch_uid="no-such-receiver")


def test_receivers_that_get_lost(tidy_kitchen):
    for _ in range(16):
        def notify_waiter(sender, **kwargs):
            return None

        order_placed.connect(notify_waiter)
        del notify_waiter
        gc.collect()
    order_placed.disconnect(dispatch_uid="no-such-receiver")
"""


def test_signal_hygiene_is_grouped_and_reported_with_its_test(kitchen: pytest.Pytester) -> None:
    (kitchen.path / "test_hygiene_cases.py").write_text(HYGIENE_TESTS)
    result = run(kitchen, "--signals", "test_hygiene_cases.py")
    assert result.ret == pytest.ExitCode.OK
    where = f"{kitchen.path}/test_hygiene_cases.py"
    result.stdout.fnmatch_lines(
        [
            "Signal hygiene (see the dashboard's registry):",
            "  lost (garbage-collected while connected): "
            "test_hygiene_cases.test_receivers_that_get_lost.<locals>.notify_waiter x16 "
            f"on kitchen.signals.order_placed at {where}:18  "
            "in test_hygiene_cases.py::test_receivers_that_get_lost",
            "  disconnect() removed nothing: dispatch_uid='no-such-receiver' x2 "
            f"on kitchen.signals.order_placed at {where}:10 and {where}:21  "
            "in test_hygiene_cases.py::test_receivers_that_get_lost, "
            "set-up of tidy_kitchen (module fixture, test_hygiene_cases.py)",
        ]
    )
    assert result.stdout.str().count("notify_waiter") == 1


LOST_LATER_TESTS = """import gc

from kitchen.signals import order_placed

kept = []


def test_a_receiver_kept_for_later():
    def notify_owner(sender, **kwargs):
        return None

    order_placed.connect(notify_owner)
    kept.append(notify_owner)


def test_a_later_test_lets_it_go():
    kept.clear()
    gc.collect()
"""


def test_a_lost_receiver_is_charged_to_the_test_that_connected_it(
    kitchen: pytest.Pytester,
) -> None:
    (kitchen.path / "test_lost_later.py").write_text(LOST_LATER_TESTS)
    result = run(kitchen, "--signals", "test_lost_later.py")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "Signal hygiene (see the dashboard's registry):",
            "  lost (garbage-collected while connected): "
            "test_lost_later.test_a_receiver_kept_for_later.<locals>.notify_owner x1 "
            f"on kitchen.signals.order_placed at {kitchen.path}/test_lost_later.py:12  "
            "in test_lost_later.py::test_a_receiver_kept_for_later",
        ]
    )


def test_the_report_names_the_receivers_that_ran_the_most_queries(
    kitchen: pytest.Pytester,
) -> None:
    receivers = kitchen.path / "kitchen" / "receivers.py"
    receivers.write_text(
        receivers.read_text()
        + textwrap.dedent(
            """

            @receiver(oven_lit)
            def check_the_staff(sender, **kwargs):
                from django.contrib.auth.models import User

                for _ in range(3):
                    User.objects.filter(username="chef").exists()
            """
        )
    )
    (kitchen.path / "test_oven.py").write_text(
        textwrap.dedent(
            """
            import pytest

            from kitchen.signals import oven_lit


            @pytest.mark.django_db
            def test_light_the_oven_twice():
                oven_lit.send(sender="chef")
                oven_lit.send(sender="chef")
            """
        )
    )
    report = kitchen.path / "signals.json"
    result = run(kitchen, "--signals", f"--signals-json={report}")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "Receivers that ran the most queries (their own, in one test or set-up):",
            "       6  kitchen.receivers.check_the_staff"
            "  in test_oven.py::test_light_the_oven_twice",
        ]
    )
    data = json.loads(report.read_text())
    assert data["queries"] == [
        {
            "place": "test_oven.py::test_light_the_oven_twice",
            "receiver": "kitchen.receivers.check_the_staff",
            "queries": 6,
        }
    ]


def test_query_findings_say_their_worst_case_and_a_long_list_says_it_goes_on(
    tmp_path: Path,
) -> None:
    coverage = SignalCoverage()
    phase = coverage.begin("test_orders.py::test_rush_hour", setup=False)
    where = f"{tmp_path}/kitchen/receivers.py:3"
    for runs in (12, 10):  # two requests of the test
        coverage.record_finding(
            Finding(
                "query_repeated",
                "",
                "kitchen.receivers.reprint_tickets",
                [where],
                origin={"kind": "request", "method": "GET", "path": "/orders/"},
                count=runs,
                statement='SELECT * FROM "kitchen_order" WHERE "id" = %s',
                began_ns=time.perf_counter_ns(),
            )
        )
    for index in range(BUSIEST_SHOWN + 2):
        coverage.queries_per_phase[phase, f"kitchen.receivers.r{index}"] = 20 - index
    lines = report_lines(summary(coverage.data({}, {}, [], 50), tmp_path, all_receivers=True))
    assert (
        "  the same query many times in one request or command: kitchen.receivers.reprint_tickets"
        f' x2 (at most 12 runs of SELECT * FROM "kitchen_order" WHERE "id" = %s) at {where}'
        "  in test_orders.py::test_rush_hour"
    ) in lines
    assert "      20  kitchen.receivers.r0  in test_orders.py::test_rush_hour" in lines
    assert "  and 2 more (--signals-json lists them)" in lines
    assert not any("kitchen.receivers.r6" in line for line in lines)


def test_every_project_receiver_with_queries_reaches_the_json_whatever_the_others_ran(
    tmp_path: Path,
) -> None:
    # Sixty installed-package receivers ran more queries than any of the project's: the top
    # fifty of all pairs would have left every one of the project's out.
    coverage = SignalCoverage()
    phase = coverage.begin("test_orders.py::test_rush_hour", setup=False)
    known = {}
    for index in range(60):
        label = f"thirdparty.receivers.r{index}"
        coverage.queries_per_phase[phase, label] = 100 + index
        known[label] = "/site-packages/thirdparty/receivers.py:1"
    for index in range(3):
        label = f"kitchen.receivers.own{index}"
        coverage.queries_per_phase[phase, label] = 1 + index
        known[label] = f"{tmp_path}/kitchen/receivers.py:{index + 1}"
    result = summary(coverage.data(known, {}, [], 50), tmp_path, all_receivers=False)
    assert [item["receiver"] for item in result["queries"]] == [
        "kitchen.receivers.own2",
        "kitchen.receivers.own1",
        "kitchen.receivers.own0",
    ]


def test_signal_dashboards_own_receivers_are_never_the_projects_even_inside_its_root() -> None:
    from signal_dashboard import conf

    root = Path(conf.__file__).parent.parent  # a checkout that holds signal_dashboard
    ours = f"{conf.__file__}:180"
    demo = f"{root}/signal_dashboard/demo/pizzeria/signals.py:20"
    coverage = SignalCoverage()
    connected = {"signal_dashboard.conf.reset_on_change": ours, "pizzeria.bake": demo}
    result = summary(coverage.data(connected, {}, [], 50), root, all_receivers=False)
    assert result["never_ran"] == [{"receiver": "pizzeria.bake", "location": demo}]
