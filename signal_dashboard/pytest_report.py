"""Signal coverage of a test run (``pytest --signals``): which receivers ran, which never did.

The collector sees every traced send as it finishes, on the sending thread (sends folded by
``DETAIL_LIMIT`` in a drain, placed in their test by their start time), and every send that
reached no receiver; it keeps only counts and log-bucketed histograms, never the events. Its
figures are plain data (:meth:`SignalCoverage.data`), so that pytest-xdist's workers can hand
them to the controller, which merges them (:func:`merge`) and writes the report
(:func:`report_lines`).
"""

from __future__ import annotations

import bisect
import os
import sys
import sysconfig
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .stats.histogram import Histogram

if TYPE_CHECKING:
    from django.dispatch import Signal

    from .events import LightSend, SignalEvent
    from .hygiene import Finding

# How many rows the report's lists show.
SLOWEST_SHOWN = 10
BUSIEST_SHOWN = 5
# Where installed packages live: a receiver there is a third party's (or Django's).
_INSTALLED = tuple(
    str(Path(path).resolve())
    for path in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
)


class SignalCoverage:
    """Counts of one test process: receivers that ran (calls, durations), signals sent, and
    sends and storms per test."""

    def __init__(self, storm_threshold: int) -> None:
        self.storm_threshold = storm_threshold
        self.calls: dict[str, Histogram] = {}
        self.locations: dict[str, str] = {}
        self.sent: set[str] = set()
        self.sends_per_test: Counter[str] = Counter()
        self.calls_per_test: Counter[tuple[str, str]] = Counter()
        self.findings: list[dict[str, Any]] = []
        self.test: str | None = None
        # The tests run so far, by start (perf_counter_ns), for sends counted in a drain.
        self._test_starts: list[int] = []
        self._test_spans: list[tuple[int, int, str]] = []
        self._started = 0
        self._labels: dict[int, tuple[Any, str, str]] = {}

    def record(self, event: SignalEvent) -> None:
        """A send finished (a ``recorder`` subscriber, on the sending thread)."""
        self._count(event, self.test)

    def record_folded(self, send: LightSend) -> None:
        """A send folded by DETAIL_LIMIT (in a drain, perhaps after its test ended)."""
        self._count(send, self._test_at(send.start_ns))

    def record_empty(self, signal: Signal) -> None:
        """A send that reached no receiver (on the sending thread)."""
        from .labels import signal_label

        self.sent.add(signal_label(signal))
        if self.test is not None:
            self.sends_per_test[self.test] += 1

    def record_finding(self, finding: Finding) -> None:
        """A lost, doubled or run-time receiver, or a disconnect that removed nothing."""
        self.findings.append(
            {
                "type": finding.kind,
                "signal": finding.signal,
                "receiver": finding.receiver,
                "locations": finding.locations,
                "test": self.test,
            }
        )

    def _count(self, event: SignalEvent | LightSend, test: str | None) -> None:
        self.sent.add(event.signal_key.label)
        if test is not None:
            self.sends_per_test[test] += 1
        for key, _, _, duration, _, error in event.calls:  # see events.Call
            label = self._label(key)
            histogram = self.calls.get(label)
            if histogram is None:
                histogram = self.calls[label] = Histogram()
            histogram.add(duration, error=error is not None)
            if test is not None:
                self.calls_per_test[test, label] += 1

    def _test_at(self, when: int) -> str | None:
        if self.test is not None and when >= self._started:
            return self.test
        index = bisect.bisect_right(self._test_starts, when) - 1
        if index >= 0:
            start, end, nodeid = self._test_spans[index]
            if start <= when <= end:
                return nodeid
        return None

    def _label(self, key: Any) -> str:
        from .labels import receiver_label

        known = self._labels.get(id(key))
        if known is not None and known[0] is key:
            return known[1]
        label, location = receiver_label(key)
        self._labels[id(key)] = (key, label, location)
        self.locations[label] = location
        return label

    def start_test(self, nodeid: str) -> None:
        self.test = nodeid
        self._started = time.perf_counter_ns()

    def finish_test(self) -> None:
        if self.test is not None:
            self._test_starts.append(self._started)
            self._test_spans.append((self._started, time.perf_counter_ns(), self.test))
        self.test = None

    def data(self, connected: Mapping[str, str], defined: Mapping[str, str]) -> dict[str, Any]:
        """The figures as JSON-ready data, with the receivers connected at the end of the run
        (label: file:line) and the signals defined by Django and the installed apps (label:
        file), the registry's view."""
        return {
            "receivers": {
                label: {"location": self.locations.get(label, ""), **histogram.to_dict()}
                for label, histogram in self.calls.items()
            },
            "connected": dict(connected),
            "defined": dict(defined),
            "sent": sorted(self.sent),
            "sends_per_test": dict(self.sends_per_test),
            "findings": self.findings,
            # Receivers run more than the threshold inside one test.
            "storms": [
                [test, label, calls]
                for (test, label), calls in self.calls_per_test.items()
                if calls > self.storm_threshold
            ],
        }


def registry_view() -> tuple[dict[str, str], dict[str, str]]:
    """The receivers connected now (label: file:line) and the signals defined by Django and
    the installed apps (label: file of their module)."""
    from .registry import known_signals, signal_registry

    connected: dict[str, str] = {}
    for info in signal_registry():
        for receiver in info.receivers:
            if not receiver.dead:
                connected.setdefault(receiver.label, receiver.location)
    defined = {}
    for signal in known_signals():
        from .labels import signal_label

        label = signal_label(signal)
        module = sys.modules.get(label.rpartition(".")[0])
        defined[label] = getattr(module, "__file__", None) or ""
    return connected, defined


def merge(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several processes' ``data()`` as one (pytest-xdist's workers)."""
    histograms: dict[str, Histogram] = {}
    locations: dict[str, str] = {}
    merged: dict[str, Any] = {
        "connected": {},
        "defined": {},
        "sent": set(),
        "sends_per_test": Counter(),
        "storms": [],
        "findings": [],
    }
    for part in parts:
        for label, figures in part["receivers"].items():
            histogram = histograms.setdefault(label, Histogram())
            histogram.merge(Histogram.from_dict(figures))
            locations[label] = figures["location"] or locations.get(label, "")
        merged["connected"].update(part["connected"])
        merged["defined"].update(part["defined"])
        merged["sent"].update(part["sent"])
        merged["sends_per_test"].update(part["sends_per_test"])
        merged["storms"] += part["storms"]
        merged["findings"] += part["findings"]
    merged["receivers"] = {
        label: {"location": locations[label], **histogram.to_dict()}
        for label, histogram in histograms.items()
    }
    merged["sent"] = sorted(merged["sent"])
    merged["sends_per_test"] = dict(merged["sends_per_test"])
    return merged


def is_own(location: str, root: Path) -> bool:
    """Whether a receiver's or signal's file is the project's: under ``root``, and not in an
    installed package (a virtualenv inside the project included)."""
    path = location.rpartition(":")[0] if location.rpartition(":")[2].isdigit() else location
    if not path:
        return False
    resolved = str(Path(path).resolve())
    if resolved.startswith(_INSTALLED) or f"{os.sep}site-packages{os.sep}" in resolved:
        return False
    return resolved.startswith(str(root.resolve()) + os.sep)


def summary(data: Mapping[str, Any], root: Path, all_receivers: bool) -> dict[str, Any]:
    """What the report says: coverage, receivers that never ran, signals never sent, the
    slowest receivers, the busiest tests and the storms."""
    counted = {
        label: location
        for label, location in {
            **data["connected"],
            **{label: figures["location"] for label, figures in data["receivers"].items()},
        }.items()
        if all_receivers or is_own(location, root)
    }
    ran = sorted(label for label in counted if label in data["receivers"])
    never = sorted((label, counted[label]) for label in counted if label not in data["receivers"])
    sent = set(data["sent"])
    unsent = sorted(
        (label, path)
        for label, path in data["defined"].items()
        if label not in sent and (all_receivers or is_own(path, root))
    )
    slowest = []
    for label, figures in data["receivers"].items():
        if all_receivers or is_own(figures["location"], root):
            reading = Histogram.from_dict(figures).summary()
            slowest.append((label, reading))
    slowest.sort(key=lambda item: item[1]["p95_ns"], reverse=True)
    busiest = Counter(data["sends_per_test"]).most_common(BUSIEST_SHOWN)
    return {
        "receivers_connected": len(counted),
        "receivers_ran": len(ran),
        "coverage_percent": 100.0 * len(ran) / len(counted) if counted else 100.0,
        "scope": "all receivers" if all_receivers else "the project's own receivers",
        "never_ran": [{"receiver": label, "location": location} for label, location in never],
        "never_sent": [{"signal": label, "file": path} for label, path in unsent],
        "slowest": [
            {
                "receiver": label,
                "calls": reading["count"],
                "p50_ns": reading["p50_ns"],
                "p95_ns": reading["p95_ns"],
                "max_ns": reading["max_ns"],
            }
            for label, reading in slowest[:SLOWEST_SHOWN]
        ],
        "busiest_tests": [{"test": test, "sends": sends} for test, sends in busiest],
        "storms": [
            {"test": test, "receiver": label, "calls": calls}
            for test, label, calls in sorted(data["storms"], key=lambda storm: -storm[2])
        ],
        # Lost, doubled and run-time receivers, disconnects that removed nothing.
        "hygiene": [
            finding
            for finding in data["findings"]
            if all_receivers or any(is_own(where, root) for where in finding["locations"])
        ],
    }


def report_lines(result: Mapping[str, Any], storm_threshold: int) -> list[str]:
    """The terminal summary's lines."""
    lines = [
        f"Receiver coverage: {result['coverage_percent']:.1f}% "
        f"({result['receivers_ran']} of {result['receivers_connected']} "
        f"{result['scope']} ran)"
    ]
    if result["never_ran"]:
        lines.append("Receivers that never ran:")
        lines += [f"  {item['receiver']}  {item['location']}" for item in result["never_ran"]]
    if result["never_sent"]:
        lines.append("Signals never sent:")
        lines += [f"  {item['signal']}  {item['file']}" for item in result["never_sent"]]
    if result["slowest"]:
        lines.append("Slowest receivers (p50 / p95 / max, calls):")
        lines += [
            f"  {item['receiver']}  {_ms(item['p50_ns'])} / {_ms(item['p95_ns'])} / "
            f"{_ms(item['max_ns'])}, {item['calls']}"
            for item in result["slowest"]
        ]
    if result["busiest_tests"]:
        lines.append("Tests that sent the most signals:")
        lines += [f"  {item['sends']:>6}  {item['test']}" for item in result["busiest_tests"]]
    if result["storms"]:
        lines.append(f"Storms (a receiver run more than {storm_threshold} times in one test):")
        lines += [
            f"  {item['receiver']} x{item['calls']}  in {item['test']}" for item in result["storms"]
        ]
    if result["hygiene"]:
        lines.append("Signal hygiene (see the dashboard's registry):")
        lines += [
            f"  {_HYGIENE[item['type']]}: {item['receiver']} on {item['signal']}"
            f" at {' and '.join(item['locations'])}"
            + (f"  in {item['test']}" if item["test"] else "")
            for item in result["hygiene"]
        ]
    return lines


_HYGIENE = {
    "lost": "lost (garbage-collected while connected)",
    "doubled": "doubled (connected twice)",
    "connected": "connected while a test ran",
    "disconnect_missed": "disconnect() removed nothing",
}


def _ms(nanoseconds: int) -> str:
    return f"{nanoseconds / 1e6:.3f} ms"
