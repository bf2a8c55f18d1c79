"""Origins under Django's own test runner: each test is one, as pytest --signals charges each
test its own."""

from __future__ import annotations

from tests.processes import run_python

RUN_DJANGO_TESTS = """
import django
from django.conf import settings
settings.configure(
    DEBUG=True,
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "signal_dashboard"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    SIGNAL_DASHBOARD={"QUERY_REPEAT_THRESHOLD": 3},
)
django.setup()
from django.core.management import call_command
from signal_dashboard.record.recorder import recorder
try:
    call_command("test", "tests.runner_cases", verbosity=0)
except SystemExit as exit:
    print("exit", exit.code)
recorder.drain()
recorder.drain()  # (findings judged in one drain are recorded by the next)
for origin in recorder.requests:
    print(origin.kind, origin.name, origin.signal_count)
for finding in recorder.findings:
    print("finding", finding.kind, finding.receiver, finding.count)
"""


def test_each_test_is_an_origin_and_a_connect_undone_in_its_tear_down_is_no_finding() -> None:
    lines = run_python(RUN_DJANGO_TESTS, timeout=120).splitlines()
    tests = [line.split()[1] for line in lines if line.startswith("test ")]
    assert tests == [
        f"tests.runner_cases.KitchenTests.test_{name}"
        for name in ("first", "fourth", "second", "third")  # unittest's order: by name
    ]
    assert "command test 0" in lines  # each test's sends are the test's, not the command's
    # Each test ran its receiver's COUNT once: never "the same query 4 times", and each
    # connect() was undone within its test.
    assert [line for line in lines if line.startswith("finding")] == []
