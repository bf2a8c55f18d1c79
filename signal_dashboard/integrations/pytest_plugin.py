"""pytest plugin: the ``signal_events`` fixture, and ``pytest --signals``, a report of which
receivers the test run exercised (see pytest_coverage.py and pytest_report.py)."""

from __future__ import annotations

import functools
import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..tracing import CapturedEvents
    from .pytest_coverage import Phase, SignalCoverage

# Where a pytest-xdist worker hands its figures to the controller.
WORKER_OUTPUT_KEY = "signal_dashboard_signals"
# The name the report plugin is registered under, once per run.
REPORT_PLUGIN = "signal_dashboard_report"


@pytest.fixture
def signal_events() -> Iterator[CapturedEvents]:
    """The signal events sent during the test::

    def test_order(signal_events):
        Order.objects.create(...)
        [event] = signal_events.filter(signal=post_save, sender=Order)
        assert event.ok
    """
    # Imported here: pytest loads plugins before Django is set up.
    from ..tracing import capture

    with capture() as events:
        yield events


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("signal-dashboard", "signal coverage (signal-dashboard)")
    group.addoption(
        "--signals",
        action="store_true",
        help="End the run with a report of the signal receivers it exercised.",
    )
    group.addoption(
        "--signals-json",
        metavar="PATH",
        help="Write the signal report as JSON to PATH (implies --signals).",
    )
    group.addoption(
        "--signals-fail-under",
        metavar="PCT",
        type=float,
        help="Fail the run if receiver coverage is below PCT percent (implies --signals).",
    )
    group.addoption(
        "--signals-all",
        action="store_true",
        help="Count Django's and third-party apps' receivers too, not only the project's.",
    )


def _wants_report(options: Any) -> bool:
    return bool(options.signals or options.signals_json or options.signals_fail_under is not None)


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, Any, Any]:
    # A wrapper runs before every plain implementation, pytest-django's among them, which sets
    # Django up: tracing started here sees the receivers that run as the models are imported
    # (class_prepared's), and the conftests' sends. Django's settings may not be configured yet.
    if _wants_report(early_config.known_args_namespace):
        report = SignalsReport(early_config)
        early_config.pluginmanager.register(report, REPORT_PLUGIN)
        report.start()
    return (yield)


def pytest_configure(config: pytest.Config) -> None:
    # Not registered yet: this plugin was loaded after the initial conftests (by a conftest, say),
    # so tracing starts with the session.
    if _wants_report(config.option) and not config.pluginmanager.hasplugin(REPORT_PLUGIN):
        config.pluginmanager.register(SignalsReport(config), REPORT_PLUGIN)


class SignalsReport:
    """Traces the run's sends, per test and per set-up, and reports on them at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.coverage: SignalCoverage | None = None
        self.parts: list[dict[str, Any]] = []
        self.result: dict[str, Any] | None = None
        self._stop: Any = None
        # Fixtures being torn down, and the phase their teardown is charged to.
        self._teardowns: dict[pytest.FixtureDef[Any], Phase] = {}

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    @property
    def is_controller(self) -> bool:
        return self.config.pluginmanager.hasplugin("dsession")

    def start(self) -> None:
        """Trace every send from now on, whatever ENABLED says (tracing changes nothing the
        tests see), and count them. Reads no Django setting: they may not be configured yet."""
        from django.apps import apps
        from django.conf import settings

        from .. import conf, tracing
        from ..capture.hygiene import hygiene
        from ..capture.send import keep_every_send, watch_empty_sends
        from ..record.recorder import recorder
        from .pytest_coverage import SignalCoverage

        installed_here = not tracing.is_installed()
        tracing.install()
        self.coverage = coverage = SignalCoverage(started_late=apps.loading or apps.apps_ready)
        stops = [
            # Each send counted in its test: none folded by DETAIL_LIMIT.
            keep_every_send(),
            recorder.subscribe(coverage.record, immediate=True),
            recorder.subscribe_folded(coverage.record_folded),
            watch_empty_sends(coverage.record_empty),
            hygiene.watch(coverage.record_finding),
        ]

        def stop() -> None:
            recorder.drain()  # the folded sends not counted yet
            for unsubscribe in stops:
                unsubscribe()
            # Left installed if the project's settings turn it on: their install() in
            # AppConfig.ready() found it installed already.
            if installed_here and not (settings.configured and conf.tracing_enabled()):
                tracing.uninstall()

        self._stop = stop

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from .. import conf

        if self.is_controller:
            # The workers run the tests, and trace them: the controller has nothing to count.
            if self.coverage is not None:
                self._stop()
                self.coverage = None
            return
        if self.coverage is None:
            self.start()
        else:
            # Tracing started before Django's settings were configured: read them now.
            conf.reset()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, Any, Any]:
        coverage = self.coverage
        if coverage is None:
            return (yield)
        test = coverage.begin(item.nodeid, setup=False)
        try:
            return (yield)
        finally:
            coverage.end(test)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, Any, Any]:
        coverage = self.coverage
        # A test's own fixtures are part of the test (a class fixture too, for a test outside
        # a class: it is set up for that test alone).
        if coverage is None or isinstance(request.node, pytest.Item):
            return (yield)
        # A wider fixture is set up for the first test that needs it (pytest-django's
        # django_db_setup creates the test database): its sends are no test's.
        name = _fixture_name(fixturedef, request)
        setup = coverage.begin(f"set-up of {name}", setup=True)
        try:
            return (yield)
        finally:
            coverage.end(setup)
            # Added after the fixture's own finalizers (its code after ``yield``), so run
            # before them; pytest_fixture_post_finalizer runs after them.
            fixturedef.addfinalizer(functools.partial(self._tear_down, fixturedef, name))

    def _tear_down(self, fixturedef: pytest.FixtureDef[Any], name: str) -> None:
        if self.coverage is not None:
            self._teardowns[fixturedef] = self.coverage.begin(f"teardown of {name}", setup=True)

    def pytest_fixture_post_finalizer(self, fixturedef: pytest.FixtureDef[Any]) -> None:
        teardown = self._teardowns.pop(fixturedef, None)
        if teardown is not None and self.coverage is not None:
            self.coverage.end(teardown)

    @pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, which may not be installed
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """A pytest-xdist worker finished: its figures, to merge."""
        output = getattr(node, "workeroutput", {})
        if WORKER_OUTPUT_KEY in output:
            self.parts.append(json.loads(output[WORKER_OUTPUT_KEY]))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from ..conf import current_config
        from .pytest_coverage import registry_view
        from .pytest_report import merge, summary

        if self.coverage is not None:
            self._stop()
            storm_threshold = int(current_config()["STORM_THRESHOLD"])
            self.parts.append(self.coverage.data(*registry_view(), storm_threshold))
            self.coverage = None
        if self.is_worker:
            self.config.workeroutput[WORKER_OUTPUT_KEY] = json.dumps(self.parts[-1])  # type: ignore[attr-defined]
            return
        if not self.parts:
            return
        self.result = summary(
            merge(self.parts), Path(str(self.config.rootpath)), self.config.option.signals_all
        )
        path = self.config.option.signals_json
        if path:
            Path(path).write_text(json.dumps(self.result, indent=2) + "\n")
        threshold = self.config.option.signals_fail_under
        below = threshold is not None and self.result["coverage_percent"] < threshold
        if below and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.result is None:
            return
        from .pytest_report import report_lines

        terminalreporter.section("signals")
        for line in report_lines(self.result):
            terminalreporter.write_line(line)
        threshold = self.config.option.signals_fail_under
        if threshold is not None:
            verdict = "below" if self.result["coverage_percent"] < threshold else "at or above"
            terminalreporter.write_line(
                f"Receiver coverage {self.result['coverage_percent']:.1f}% is {verdict} "
                f"--signals-fail-under={threshold:g}"
            )
        if self.config.option.signals_json:
            terminalreporter.write_line(
                f"Signal report written to {self.config.option.signals_json}"
            )


def _fixture_name(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> str:
    """``django_db_setup (session fixture)``; a module, package or class fixture with the node
    it serves, as each of them is set up anew."""
    served = request.node.nodeid
    return f"{fixturedef.argname} ({fixturedef.scope} fixture{f', {served}' if served else ''})"
