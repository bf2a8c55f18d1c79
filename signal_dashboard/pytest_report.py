"""Signal coverage of a test run (``pytest --signals``): which receivers ran, which never did.

The collector sees every traced send as it finishes, on the sending thread (sends folded by
``DETAIL_LIMIT`` in a drain, placed by their start time), and every send that reached no
receiver; it keeps only counts and log-bucketed histograms, never the events. Each send is
charged to a :class:`Phase`: the test running, or set-up that is no single test's (pytest and
Django starting, a session, module or class fixture set up or torn down), so that creating the
test database is not charged to whichever test needed it first. Its figures are plain data
(:meth:`SignalCoverage.data`), so that pytest-xdist's workers can hand them to the controller,
which merges them (:func:`merge`) and writes the report (:func:`report_lines`).
"""

from __future__ import annotations

import bisect
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .database import per_call
from .locations import is_installed, path_of
from .stats.histogram import Histogram

if TYPE_CHECKING:
    from django.dispatch import Signal

    from .events import SignalEvent, Tally
    from .hygiene import Finding

# How many rows the report's lists show.
SLOWEST_SHOWN = 10
BUSIEST_SHOWN = 5
# (test or set-up, receiver) pairs with queries a test process passes on, the most first.
QUERIES_KEPT = 50
# How many of the tests (and set-ups) a hygiene line names.
PLACES_SHOWN = 3
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
        # One group per (receiver, kind, signal): see _gather().
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
        from .labels import signal_label

        self.sent.add(signal_label(signal))
        self.sends[self.phase] += 1

    def record_finding(self, finding: Finding) -> None:
        """A lost, doubled or run-time receiver, a disconnect that removed nothing, or a
        receiver's queries (see querying.py)."""
        # A receiver is lost when the garbage collector gets to it, perhaps tests later: the
        # test (or set-up) that connected it, and left it connected, is the one to name. A
        # request's query findings are judged after it ended: the test that made it is named.
        when = getattr(finding, "connected_ns", None) or getattr(finding, "began_ns", None)
        phase = self.phase if when is None else self._phase_at(when)
        _gather(
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
        from .labels import receiver_label

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
            # [test or set-up, receiver, its queries there], the most first.
            "queries": [
                [phase.name, label, count]
                for (phase, label), count in self.queries_per_phase.most_common(QUERIES_KEPT)
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


def _gather(groups: dict[tuple[str, str, str], dict[str, Any]], finding: Mapping[str, Any]) -> None:
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

    from .labels import signal_label
    from .registry import known_signals, signal_registry

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


def merge(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several processes' ``data()`` as one (pytest-xdist's workers)."""
    histograms: dict[str, Histogram] = {}
    locations: dict[str, str] = {}
    findings: dict[tuple[str, str, str], dict[str, Any]] = {}
    merged: dict[str, Any] = {
        "connected": {},
        "defined": {},
        "sent": set(),
        "sends_per_test": Counter(),
        "sends_per_setup": Counter(),
        "storms": [],
        "setup_storms": [],
        "queries": [],
        "started_late": False,
        "class_prepared_receivers": set(),
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
        merged["sends_per_setup"].update(part["sends_per_setup"])
        merged["storms"] += part["storms"]
        merged["setup_storms"] += part["setup_storms"]
        merged["queries"] += part.get("queries", [])
        merged["started_late"] |= part["started_late"]
        merged["class_prepared_receivers"].update(part["class_prepared_receivers"])
        merged["storm_threshold"] = part["storm_threshold"]  # every process has the settings
        for finding in part["findings"]:
            _gather(findings, finding)
    merged["receivers"] = {
        label: {"location": locations[label], **histogram.to_dict()}
        for label, histogram in histograms.items()
    }
    merged["sent"] = sorted(merged["sent"])
    merged["sends_per_test"] = dict(merged["sends_per_test"])
    merged["sends_per_setup"] = dict(merged["sends_per_setup"])
    merged["class_prepared_receivers"] = sorted(merged["class_prepared_receivers"])
    merged["findings"] = list(findings.values())
    return merged


def is_own(location: str, root: Path) -> bool:
    """Whether a receiver's or signal's file is the project's: under ``root``, and not
    Python's, Django's or an installed package's (a virtualenv inside the project included)."""
    path = path_of(location)
    if not path or is_installed(path):
        return False
    return str(Path(path).resolve()).startswith(str(root.resolve()) + os.sep)


def summary(data: Mapping[str, Any], root: Path, all_receivers: bool) -> dict[str, Any]:
    """What the report says: coverage, receivers that never ran (or that cannot be judged),
    signals never sent, the slowest receivers, the tests and set-ups that sent the most
    signals, the storms and the signal-hygiene findings, of the project's own receivers (or,
    with ``all_receivers``, of all)."""

    def counts(location: str) -> bool:
        return all_receivers or is_own(location, root)

    receivers = data["receivers"]
    late = data["started_late"]
    # Tracing started after Django's set-up had sent class_prepared for the models: whether
    # its receivers ran then is unknown, and only a run seen later tells.
    unjudged = set(data["class_prepared_receivers"]) - receivers.keys() if late else set()
    known = {
        **data["connected"],
        **{label: figures["location"] for label, figures in receivers.items()},
    }
    counted = {
        label: location
        for label, location in known.items()
        if counts(location) and label not in unjudged
    }
    ran = sorted(label for label in counted if label in receivers)
    never = sorted((label, counted[label]) for label in counted if label not in receivers)
    not_judged = sorted(
        (label, known[label]) for label in unjudged if label in known and counts(known[label])
    )
    sent = set(data["sent"])
    unsent = sorted(
        (label, path)
        for label, path in data["defined"].items()
        if label not in sent
        and not (late and label == CLASS_PREPARED)
        and (all_receivers or is_own(path, root))
    )
    slowest = []
    for label, figures in receivers.items():
        if counts(figures["location"]):
            reading = Histogram.from_dict(figures).summary()
            slowest.append((label, reading))
    slowest.sort(key=lambda item: item[1]["p95_ns"], reverse=True)

    def storms(found: Iterable[list[Any]], where: str) -> list[dict[str, Any]]:
        return [
            {where: phase, "receiver": label, "calls": calls}
            for phase, label, calls in sorted(found, key=lambda storm: -storm[2])
            if counts(receivers[label]["location"])
        ]

    return {
        "receivers_connected": len(counted),
        "receivers_ran": len(ran),
        "coverage_percent": 100.0 * len(ran) / len(counted) if counted else 100.0,
        "scope": "all receivers" if all_receivers else "the project's own receivers",
        "started_late": late,
        "never_ran": [{"receiver": label, "location": location} for label, location in never],
        "not_judged": [{"receiver": label, "location": location} for label, location in not_judged],
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
        "busiest_tests": [
            {"test": test, "sends": sends}
            for test, sends in Counter(data["sends_per_test"]).most_common(BUSIEST_SHOWN)
        ],
        # Sends of no single test's: pytest and Django starting, wider fixtures.
        "busiest_setup": [
            {"setup": setup, "sends": sends}
            for setup, sends in Counter(data["sends_per_setup"]).most_common(BUSIEST_SHOWN)
        ],
        "storm_threshold": data["storm_threshold"],
        "storms": storms(data["storms"], "test"),
        "setup_storms": storms(data["setup_storms"], "setup"),
        "queries": [
            {"place": place, "receiver": receiver, "queries": count}
            for place, receiver, count in sorted(data.get("queries", []), key=lambda q: -q[2])
            if counts(known.get(receiver, ""))
        ],
        # Lost, doubled and run-time receivers, disconnects that removed nothing: one per
        # receiver, kind and signal, the most frequent first.
        "hygiene": sorted(
            (
                finding
                for finding in data["findings"]
                if all_receivers or any(is_own(where, root) for where in finding["locations"])
            ),
            key=lambda finding: -finding["count"],
        ),
    }


def report_lines(result: Mapping[str, Any]) -> list[str]:
    """The terminal summary's lines."""
    lines = [
        f"Receiver coverage: {result['coverage_percent']:.1f}% "
        f"({result['receivers_ran']} of {result['receivers_connected']} "
        f"{result['scope']} ran)"
    ]
    if result["started_late"]:
        lines.append(
            "Tracing started after Django was set up: receivers of the signals sent before "
            "then cannot be judged (those of class_prepared are not counted)"
        )
    if result["never_ran"]:
        lines.append("Receivers that never ran:")
        lines += [f"  {item['receiver']}  {item['location']}" for item in result["never_ran"]]
    if result["not_judged"]:
        lines.append("Receivers not judged (of class_prepared, sent before tracing started):")
        lines += [f"  {item['receiver']}  {item['location']}" for item in result["not_judged"]]
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
    if result["busiest_setup"]:
        lines.append("Set-up that sent the most signals (no test's):")
        lines += [f"  {item['sends']:>6}  {item['setup']}" for item in result["busiest_setup"]]
    threshold = result["storm_threshold"]
    if result["storms"]:
        lines.append(f"Storms (a receiver run more than {threshold} times in one test):")
        lines += [
            f"  {item['receiver']} x{item['calls']}  in {item['test']}" for item in result["storms"]
        ]
    if result["setup_storms"]:
        lines.append(f"Storms in set-up (a receiver run more than {threshold} times in one):")
        lines += [
            f"  {item['receiver']} x{item['calls']}  in {item['setup']}"
            for item in result["setup_storms"]
        ]
    if result["queries"]:
        lines.append("Receivers that ran the most queries (their own, in one test or set-up):")
        lines += [
            f"  {item['queries']:>6}  {item['receiver']}  in {item['place']}"
            for item in result["queries"][:BUSIEST_SHOWN]
        ]
        more = len(result["queries"]) - BUSIEST_SHOWN
        if more > 0:
            lines.append(f"  and {more} more (--signals-json lists them)")
    if result["hygiene"]:
        lines.append("Signal hygiene (see the dashboard's registry):")
        lines += [
            f"  {_HYGIENE[item['type']]}: {item['receiver']} x{item['count']}"
            + (f" on {item['signal']}" if item["signal"] else "")
            + _most(item)
            + f" at {' and '.join(item['locations'])}  "
            f"in {_places([*item['tests'], *item['setup']])}"
            for item in result["hygiene"]
        ]
    return lines


_HYGIENE = {
    "lost": "lost (garbage-collected while connected)",
    "doubled": "doubled (connected twice)",
    "connected": "connected while a request or command ran",
    "disconnect_missed": "disconnect() removed nothing",
    "query_in_init": "queries in a pre_init/post_init receiver (run for every row)",
    "query_repeated": "the same query many times in one request or command",
    "query_heavy": "many queries in one request or command",
}


def _most(item: Mapping[str, Any]) -> str:
    """What a query finding's worst case was: ``(at most 12 runs of SELECT …)``."""
    most = item.get("most", 0)
    if not most or not item["type"].startswith("query_"):
        return ""
    if item["type"] == "query_repeated":
        return f" (at most {most} runs of {item.get('statement', '')})"
    return f" (at most {most} queries)"


def _places(names: list[str]) -> str:
    shown = ", ".join(names[:PLACES_SHOWN])
    more = len(names) - PLACES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def _ms(nanoseconds: int) -> str:
    return f"{nanoseconds / 1e6:.3f} ms"
