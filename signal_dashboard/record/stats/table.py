"""A latency table: what it shows (its query, parsed from a page, a socket or an export) and its
rows."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ...capture.histogram import Histogram

if TYPE_CHECKING:
    from .series import Storms

GROUPS = ("receiver", "signal", "sender")
SORT_COLUMNS = (
    "name",
    "count",
    "errors",
    "mean",
    "p50",
    "p95",
    "p99",
    "max",
    "last",
    "queries",
    "query_share",
)


@dataclass(frozen=True)
class TableQuery:
    """What a latency table shows: grouped by what, over which span, in which order."""

    group: str = "receiver"
    sort: str = "p95"
    descending: bool = True
    window: bool = True  # the rolling window; False: since start

    PARAMS: ClassVar[tuple[str, ...]] = ("group", "sort", "order", "span")

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> TableQuery:
        """From a query string or a socket message; ValueError with a user-fit message."""
        group = data.get("group") or "receiver"
        sort = data.get("sort") or "p95"
        order = data.get("order") or ("asc" if sort == "name" else "desc")
        span = data.get("span") or "window"
        if group not in GROUPS:
            raise ValueError(f"group must be one of {', '.join(GROUPS)}; got {str(group)[:40]!r}.")
        if sort not in SORT_COLUMNS:
            raise ValueError(
                f"sort must be one of {', '.join(SORT_COLUMNS)}; got {str(sort)[:40]!r}."
            )
        if order not in ("asc", "desc"):
            raise ValueError(f"order must be asc or desc; got {str(order)[:40]!r}.")
        if span not in ("window", "all"):
            raise ValueError(f"span must be window or all; got {str(span)[:40]!r}.")
        return cls(group=group, sort=sort, descending=order == "desc", window=span == "window")

    def changed_query(self) -> dict[str, str]:
        """The fields that differ from the defaults (a page's URL carries only those)."""
        default = TableQuery.parse({"sort": self.sort}).to_query()  # the column's own order
        ours = self.to_query()
        changed = {key: value for key, value in ours.items() if value != default[key]}
        if self.sort != TableQuery.sort:
            changed["sort"] = self.sort
        return changed

    def to_query(self) -> dict[str, str]:
        return {
            "group": self.group,
            "sort": self.sort,
            "order": "desc" if self.descending else "asc",
            "span": "window" if self.window else "all",
        }


@dataclass
class TableRow:
    """One line of a latency table."""

    name: str
    histogram: Histogram
    location: str = ""
    storms: Storms | None = None
    last: float = 0.0  # wall-clock seconds of the latest call
    slow: bool = False
    # Its calls' queries (store.new_queries()): how many, the most one call made, their time.
    queries: list[int] = field(default_factory=lambda: [0, 0, 0])

    @functools.cached_property
    def summary(self) -> dict[str, Any]:
        """The histogram's summary (count, errors, mean, percentiles) and the calls' queries
        (per call, the most in one call, their share of the calls' time), computed once."""
        histogram = self.histogram
        count, most, spent = self.queries
        return {
            **histogram.summary(),
            "queries_per_call": count / histogram.count if histogram.count else 0.0,
            "queries_max": most,
            "query_share": spent / histogram.sum_ns if histogram.sum_ns else 0.0,
        }

    def as_dict(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            **self.summary,
            "last": self.last,
            "histogram": self.histogram.to_dict(),
        }
        if self.location:
            data["location"] = self.location
        if self.storms is not None:
            data["storm_requests"] = self.storms.requests
            data["storm_max_calls"] = self.storms.max_calls
        return data

    def sort_value(self, column: str) -> Any:
        if column == "name":
            return self.name.lower()
        if column == "last":
            return self.last
        if column == "queries":
            return self.summary["queries_per_call"]
        if column == "query_share":
            return self.summary["query_share"]
        summary = self.histogram
        if column == "count":
            return summary.count
        if column == "errors":
            return summary.errors
        if column == "mean":
            return summary.mean_ns
        if column == "max":
            return summary.max_ns
        return summary.percentile(int(column[1:]))
