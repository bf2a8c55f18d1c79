"""pytest plugin: the ``signal_events`` fixture, and ``pytest --signals``, a report of which
receivers the test run exercised (see pytest_report.py)."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .pytest_report import SignalCoverage
    from .tracing import CapturedEvents

# Where a pytest-xdist worker hands its figures to the controller.
WORKER_OUTPUT_KEY = "signal_dashboard_signals"


@pytest.fixture
def signal_events() -> Iterator[CapturedEvents]:
    """The signal events sent during the test::

    def test_order(signal_events):
        Order.objects.create(...)
        [event] = signal_events.filter(signal=post_save, sender=Order)
        assert event.ok
    """
    # Imported here: pytest loads plugins before Django is set up.
    from .tracing import capture

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


def pytest_configure(config: pytest.Config) -> None:
    options = config.option
    if options.signals or options.signals_json or options.signals_fail_under is not None:
        config.pluginmanager.register(SignalsReport(config), "signal_dashboard_report")


class SignalsReport:
    """Traces the run's sends, per test, and reports on them at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.coverage: SignalCoverage | None = None
        self.parts: list[dict[str, Any]] = []
        self.result: dict[str, Any] | None = None
        self._stop: Any = None

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    @property
    def is_controller(self) -> bool:
        return self.config.pluginmanager.hasplugin("dsession")

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.is_controller:
            return  # the workers run the tests
        from . import tracing
        from .conf import get_config
        from .hygiene import hygiene
        from .pytest_report import SignalCoverage
        from .recorder import recorder

        # Traced for the run, whatever ENABLED says: tracing changes nothing the tests see.
        installed_here = not tracing.is_installed()
        tracing.install()
        self.coverage = coverage = SignalCoverage(int(get_config()["STORM_THRESHOLD"]))
        stops = [
            recorder.subscribe(coverage.record, immediate=True),
            recorder.subscribe_folded(coverage.record_folded),
            tracing.watch_empty_sends(coverage.record_empty),
            hygiene.watch(coverage.record_finding),
        ]

        def stop() -> None:
            recorder.drain()  # the folded sends not counted yet
            for unsubscribe in stops:
                unsubscribe()
            if installed_here:
                tracing.uninstall()

        self._stop = stop

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, Any, Any]:
        if self.coverage is not None:
            self.coverage.start_test(item.nodeid)
        try:
            return (yield)
        finally:
            if self.coverage is not None:
                self.coverage.finish_test()

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """A pytest-xdist worker finished: its figures, to merge."""
        output = getattr(node, "workeroutput", {})
        if WORKER_OUTPUT_KEY in output:
            self.parts.append(json.loads(output[WORKER_OUTPUT_KEY]))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from .pytest_report import merge, registry_view, summary

        if self.coverage is not None:
            self._stop()
            self.parts.append(self.coverage.data(*registry_view()))
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
        from .conf import get_config
        from .pytest_report import report_lines

        terminalreporter.section("signals")
        for line in report_lines(self.result, int(get_config()["STORM_THRESHOLD"])):
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
