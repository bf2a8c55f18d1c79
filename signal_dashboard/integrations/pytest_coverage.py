"""Signal coverage of a test run (``pytest --signals``), counted as it runs.

The collector sees every traced send as it finishes, on the sending thread (sends folded by
``DETAIL_LIMIT`` in a drain, placed by their start time), and every send that reached no
receiver; it keeps only counts and log-bucketed histograms, never the events. Each send is
charged to a :class:`Phase`: the test running, or set-up that is no single test's (pytest and
Django starting, a session, module or class fixture set up or torn down), so that creating the
test database is not charged to whichever test needed it first. Its figures are plain data
(:meth:`SignalCoverage.data`), so that pytest-xdist's workers can hand them to the controller,
which merges them and writes the report (pytest_report.py).
"""

from __future__ import annotations

import bisect
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from ..capture.histogram import Histogram
from ..capture.queries import per_call

if TYPE_CHECKING:
    from django.dispatch import Signal

    from ..capture.events import SignalEvent
    from ..capture.finding import Finding
    from ..capture.tally import Tally

# Where installed packages live: a receiver there is a third party's (or Django's).
# Sent for every model class as it is imported, inside django.setup(): unseen if tracing
# started after it (see SignalCoverage.started_late).
CLASS_PREPARED = "django.db.models.signals.class_prepared"


class Phase(NamedTuple):
    """What a send is charged to: a test (its node id), or set-up that is no single test's."""

    name: str
    setup: bool


# Outside tests and the fixtures wider than one test: before the first test, pytest's
# and Django's set-up, the conftests and collection; after it, whatever runs between tests.
START_UP = Phase("start-up (Django set-up, conftests, collection)", setup=True)
BETWEEN_TESTS = Phase("between tests", setup=True)


class SignalCoverage:
    """Counts of one test process: receivers that ran (calls, durations), signals sent, sends
    and receiver calls per test and per set-up, and signal-hygiene findings."""

    def __init__(self, started_late: bool = False) -> None:
        # Django was (being) set up when tracing started: what its set-up sent was not seen.
        self.started_late = started_late
        self.calls: dict[str, Histogram] = {}
        self.locations: dict[str, str] = {}
        self.sent: set[str] = set()
        self.sends: Counter[Phase] = Counter()
        self.calls_per_phase: Counter[tuple[Phase, str]] = Counter()
        # Each receiver's own queries, per test or set-up.
        self.queries_per_phase: Counter[tuple[Phase, str]] = Counter()
        # One group per (receiver, kind, signal): see gather_finding().
        self.findings: dict[tuple[str, str, str], dict[str, Any]] = {}
        # The phases begun and not ended, innermost last (a fixture's set-up or teardown runs
        # inside a test's protocol); sends are charged to the innermost, ``phase``.
        self._open: list[Phase] = [START_UP]
        self.phase = START_UP
        # Each change of phase (perf_counter_ns, the phase from then on), for sends and
        # findings placed after the fact.
        self._timeline: list[tuple[int, Phase]] = [(time.perf_counter_ns(), START_UP)]
        self._labels: dict[int, tuple[Any, str, str]] = {}

    def record(self, event: SignalEvent) -> None:
        """A send finished (a ``recorder`` subscriber, on the sending thread)."""
        self._count(event, self.phase)

    def record_folded(
        self, tally: Tally, sends: Histogram, receivers: list[tuple[Any, Histogram]]
    ) -> None:
        """Sends folded by DETAIL_LIMIT (read in a drain, perhaps after their test ended: they
        are placed by the latest one's start). The plugin keeps every send in full, so only a
        send made while it was not recording in full gets here."""
        phase = self._phase_at(tally.last_ns)
        self.sent.add(tally.signal_key.label)
        self.sends[phase] += sends.count
        for key, added in receivers:
            label = self._label(key)
            histogram = self.calls.get(label)
            if histogram is None:
                histogram = self.calls[label] = Histogram()
            histogram.merge(added)
            self.calls_per_phase[phase, label] += added.count

    def record_empty(self, signal: Signal) -> None:
        """A send that reached no receiver (on the sending thread)."""
        from ..capture.labels import signal_label

        self.sent.add(signal_label(signal))
        self.sends[self.phase] += 1

    def record_finding(self, finding: Finding) -> None:
        """A lost, doubled or run-time receiver, a disconnect that removed nothing, or a
        receiver's queries (see record/findings.py)."""
        # A receiver is lost when the garbage collector gets to it, perhaps tests later: the
        # test (or set-up) that connected it, and left it connected, is the one to name. A
        # request's query findings are judged after it ended: the test that made it is named.
        when = getattr(finding, "connected_ns", None) or getattr(finding, "began_ns", None)
        phase = self.phase if when is None else self._phase_at(when)
        gather_finding(
            self.findings,
            {
                "type": finding.kind,
                "signal": finding.signal,
                "receiver": finding.receiver,
                "locations": finding.locations,
                "count": 1,
                # A query finding's figure (the most queries, or runs of one statement) and
                # that statement.
                "most": getattr(finding, "count", 0),
                "statement": getattr(finding, "statement", ""),
                "tests": {} if phase.setup else {phase.name: 1},
                "setup": {phase.name: 1} if phase.setup else {},
            },
        )

    def _count(self, event: SignalEvent, phase: Phase) -> None:
        self.sent.add(event.signal_key.label)
        self.sends[phase] += 1
        if event.queries is not None:
            for call, made in zip(
                event.calls, per_call(event.calls, event.queries, None), strict=True
            ):
                if made.count:
                    self.queries_per_phase[phase, self._label(call[0])] += made.count
        for key, _, _, duration, _, error in event.calls:  # see events.Call
            label = self._label(key)
            histogram = self.calls.get(label)
            if histogram is None:
                histogram = self.calls[label] = Histogram()
            histogram.add(duration, error=error is not None)
            self.calls_per_phase[phase, label] += 1

    def _phase_at(self, when: int) -> Phase:
        index = bisect.bisect_right(self._timeline, when, key=itemgetter(0)) - 1
        return self._timeline[index][1] if index >= 0 else START_UP

    def _label(self, key: Any) -> str:
        from ..capture.labels import receiver_label

        known = self._labels.get(id(key))
        if known is not None and known[0] is key:
            return known[1]
        label, location = receiver_label(key)
        self._labels[id(key)] = (key, label, location)
        self.locations[label] = location
        return label

    def begin(self, name: str, setup: bool) -> Phase:
        """Charge what happens from now on to a test (its node id) or a set-up, until
        :meth:`end` is called with the phase returned."""
        if not setup:
            self._open[0] = BETWEEN_TESTS  # the start-up is over once a test has begun
        phase = Phase(name, setup)
        self._open.append(phase)
        self._switch()
        return phase

    def end(self, phase: Phase) -> None:
        """``phase`` is over, and whatever began inside it and was not ended (a fixture whose
        teardown was cut short)."""
        opened = self._open
        for index in range(len(opened) - 1, 0, -1):
            if opened[index] == phase:
                del opened[index:]
                self._switch()
                return

    def _switch(self) -> None:
        self.phase = phase = self._open[-1]
        # One list of pairs, appended whole: a drain on another thread may be reading it.
        self._timeline.append((time.perf_counter_ns(), phase))

    def data(
        self,
        connected: Mapping[str, str],
        defined: Mapping[str, str],
        class_prepared_receivers: Iterable[str],
        storm_threshold: int,
    ) -> dict[str, Any]:
        """The figures as JSON-ready data, with the registry's view at the end of the run: the
        receivers connected (label: file:line), the signals defined by Django and the
        installed apps (label: file) and the receivers of class_prepared (labels)."""
        return {
            "receivers": {
                label: {"location": self.locations.get(label, ""), **histogram.to_dict()}
                for label, histogram in self.calls.items()
            },
            "connected": dict(connected),
            "defined": dict(defined),
            "sent": sorted(self.sent),
            "sends_per_test": {
                phase.name: sends for phase, sends in self.sends.items() if not phase.setup
            },
            "sends_per_setup": {
                phase.name: sends for phase, sends in self.sends.items() if phase.setup
            },
            "findings": list(self.findings.values()),
            "storm_threshold": storm_threshold,
            # Receivers run more than the threshold inside one test, or one set-up.
            "storms": self._storms(storm_threshold, setup=False),
            "setup_storms": self._storms(storm_threshold, setup=True),
            # [test or set-up, receiver, its queries there], the most first: every pair, as
            # which are the project's is judged only once the workers' figures are merged.
            "queries": [
                [phase.name, label, count]
                for (phase, label), count in self.queries_per_phase.most_common()
            ],
            "started_late": self.started_late,
            "class_prepared_receivers": sorted(class_prepared_receivers),
        }

    def _storms(self, threshold: int, setup: bool) -> list[list[Any]]:
        return [
            [phase.name, label, calls]
            for (phase, label), calls in self.calls_per_phase.items()
            if calls > threshold and phase.setup is setup
        ]


def gather_finding(
    groups: dict[tuple[str, str, str], dict[str, Any]], finding: Mapping[str, Any]
) -> None:
    """Add a finding, or a group of them, to its group (one per receiver, kind and signal):
    counted, with where the receiver was connected and the tests and set-ups it happened in."""
    key = (finding["receiver"], finding["type"], finding["signal"])
    group = groups.get(key)
    if group is None:
        group = groups[key] = {**finding, "locations": [], "count": 0, "tests": {}, "setup": {}}
    group["count"] += finding["count"]
    if finding.get("most", 0) > group.get("most", 0):
        group["most"], group["statement"] = finding["most"], finding.get("statement", "")
    group["locations"] += [
        where for where in finding["locations"] if where not in group["locations"]
    ]
    for places in ("tests", "setup"):
        counts = group[places]
        for name, count in finding[places].items():
            counts[name] = counts.get(name, 0) + count


def registry_view() -> tuple[dict[str, str], dict[str, str], list[str]]:
    """The receivers connected now (label: file:line), the signals defined by Django and the
    installed apps (label: file of their module), and the receivers of class_prepared."""
    from django.db.models.signals import class_prepared

    from ..capture.labels import signal_label
    from ..web.registry import known_signals, signal_registry

    connected: dict[str, str] = {}
    prepared = []
    for info in signal_registry():
        for receiver in info.receivers:
            if not receiver.dead:
                connected.setdefault(receiver.label, receiver.location)
                if info.signal is class_prepared:
                    prepared.append(receiver.label)
    defined = {}
    for signal in known_signals():
        label = signal_label(signal)
        module = sys.modules.get(label.rpartition(".")[0])
        defined[label] = getattr(module, "__file__", None) or ""
    return connected, defined, prepared
