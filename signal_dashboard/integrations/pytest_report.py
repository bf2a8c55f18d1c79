"""The report of ``pytest --signals``: every test process's figures (pytest_coverage.py) merged,
judged against the project's own code, and written as the terminal's lines or JSON."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..capture.histogram import Histogram
from ..capture.locations import is_installed, path_of
from .pytest_coverage import CLASS_PREPARED, gather_finding

# How many rows the report's lists show.
SLOWEST_SHOWN = 10
BUSIEST_SHOWN = 5
# How many of the tests (and set-ups) a hygiene line names.
PLACES_SHOWN = 3


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
            gather_finding(findings, finding)
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
