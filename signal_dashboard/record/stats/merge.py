"""Other processes' statistics, merged from their snapshots (LatencyStore.snapshot())."""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .series import SendSeries, Series, SlowCall, Storms
from .store import SNAPSHOT_FORMAT, LatencyStore

if TYPE_CHECKING:
    from ...capture.events import SignalEvent

_unversioned_merges = itertools.count()


class MergedStore(LatencyStore):
    """The statistics of several processes, merged from their snapshots (LatencyStore.snapshot()).

    Keys are labels, so the same receiver in two processes is one series. Read-only: tables,
    receiver histograms and slowest calls work as on a process's own store.
    """

    def __init__(self, snapshots: Iterable[Mapping[str, Any]], window_seconds: int = 300) -> None:
        super().__init__(window_seconds=window_seconds)
        self.locations: dict[str, str] = {}
        self.sources: list[str] = []
        # Each merged process's store version; for a snapshot without one, a number no other
        # merge has, so that every merge counts as a change.
        self._versions: dict[str, int | tuple[str, int]] = {}
        for snapshot in snapshots:
            self.add(snapshot)

    def add(self, snapshot: Mapping[str, Any]) -> None:
        """Add one snapshot; ValueError, and nothing added, if it is not one this version reads."""
        source = str(snapshot.get("source", ""))
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(
                f"The statistics of {source!r} are in format {snapshot.get('format')!r}; "
                f"this version reads format {SNAPSHOT_FORMAT}."
            )
        # Everything is read first, so that a snapshot is added whole or not at all.
        try:
            overflow = int(snapshot.get("overflow", 0))
            sends = [
                (str(data["signal"]), str(data["sender"]), Series.parse_dict(data))
                for data in snapshot["sends"]
            ]
            calls = [
                (
                    (str(data["signal"]), str(data["sender"]), str(data["receiver"])),
                    str(data.get("location", "")),
                    Series.parse_dict(data),
                )
                for data in snapshot["calls"]
            ]
            storms = [
                (str(data["receiver"]), int(data["requests"]), int(data["calls"]))
                for data in snapshot["storms"]
            ]
            slowest = [
                (str(data["receiver"]), [SlowCall(**call) for call in data["calls"]])
                for data in snapshot.get("slowest", ())
            ]
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"The statistics of {source!r} are incomplete ({error!r}).") from None
        self.sources.append(source)
        version = snapshot.get("version")
        self._versions[source] = (
            version if type(version) is int else ("unversioned", next(_unversioned_merges))
        )
        self.overflow += overflow
        for signal, sender, parsed in sends:
            series = self.sends.get((signal, sender))
            if series is None:
                series = self.sends[(signal, sender)] = SendSeries()
            series.merge_parsed(parsed, self.slices)
        for key, location, parsed in calls:
            signal, sender, receiver = key
            send_series = self.sends.get((signal, sender))
            if send_series is None:
                send_series = self.sends[(signal, sender)] = SendSeries()
            series = send_series.receivers.get(receiver)
            if series is None:
                series = send_series.receivers[receiver] = self.calls[key] = Series()
            series.merge_parsed(parsed, self.slices)
            self.locations.setdefault(receiver, location)
        for receiver, requests, max_calls in storms:
            found = self.storms.setdefault(receiver, Storms())
            found.requests += requests
            found.max_calls = max(found.max_calls, max_calls)
        for receiver, slow_calls in slowest:
            self._slowest_of(receiver).merge(slow_calls)

    def record(self, event: SignalEvent) -> None:
        raise TypeError("A MergedStore is read-only: record into a process's own LatencyStore.")

    def fingerprint(self) -> Hashable:
        """Equal for two merges only if none of the processes' stores changed between them."""
        return frozenset(self._versions.items())

    def signal_name(self, key: Any) -> str:
        return str(key)

    def sender_name(self, key: Any) -> str:
        return str(key)

    def receiver_name(self, key: Any) -> tuple[str, str]:
        return str(key), self.locations.get(key, "")
