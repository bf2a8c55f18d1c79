"""The dashboard's stream filter: which event rows a page or a WebSocket connection shows.

Filters arrive from users (a query string, or JSON sent by htmx's ws extension), so
``EventFilter.parse`` accepts any mapping and turns everything it cannot use into a
``FilterError`` whose message can be shown as is. ``matches`` runs once per row per
connection, so its needles are prepared once, when the filter is made.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..capture.events import Row

MAX_TEXT_LENGTH = 200
MAX_DURATION_MS = 3_600_000  # one hour

_TRUE = frozenset({"on", "true", "1", "yes"})
_FALSE = frozenset({"", "off", "false", "0", "no"})

# How much of a user's input an error message quotes back.
_MAX_QUOTED = 40
_MAX_UNKNOWN_LISTED = 5

_TEXT_FIELDS = ("sender", "signal", "receiver", "path", "process", "task")
# What may have caused a send (Origin.kind): the "kind" field admits one of them.
ORIGIN_KINDS = ("request", "command", "task", "test", "process")
# How the page's "Caused by" select names each.
ORIGIN_KIND_CHOICES = (
    ("request", "requests"),
    ("command", "commands"),
    ("task", "tasks"),
    ("test", "tests (Django's test runner)"),
    ("process", "the process itself"),
)
# Exact labels, comma-separated, of what the page hides (its "hide" buttons add to them).
_HIDE_FIELDS = ("hide_signals", "hide_senders", "hide_receivers")
MAX_HIDDEN = 50


class FilterError(ValueError):
    """A filter value that cannot be used; str(error) is a message fit to show a user."""


@dataclass(frozen=True)
class EventFilter:
    """What to show of the event stream; the default filter shows everything."""

    sender: str = ""  # case-insensitive substring of row["sender"]
    signal: str = ""  # case-insensitive substring of row["signal"]
    receiver: str = ""  # case-insensitive substring of any of row["receivers"]
    path: str = ""  # prefix of row["origin"]["path"]
    process: str = ""  # case-insensitive substring of "host:pid" of the process that sent it
    task: str = ""  # case-insensitive substring of its task's name, or its task's id
    kind: str = ""  # what caused it: one of ORIGIN_KINDS ("" for any)
    min_duration_ms: float | None = None
    errors_only: bool = False
    hide_signals: frozenset[str] = frozenset()  # rows of these signals are hidden
    hide_senders: frozenset[str] = frozenset()  # ... and of these senders
    # ... and rows whose every receiver is one of these
    hide_receivers: frozenset[str] = frozenset()

    FIELDS: ClassVar[tuple[str, ...]] = (
        *_TEXT_FIELDS,
        "kind",
        "min_duration_ms",
        "errors_only",
        *_HIDE_FIELDS,
    )

    _sender: str = field(init=False, repr=False, compare=False)
    _signal: str = field(init=False, repr=False, compare=False)
    _receiver: str = field(init=False, repr=False, compare=False)
    _process: str = field(init=False, repr=False, compare=False)
    _task: str = field(init=False, repr=False, compare=False)
    _min_duration_ns: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_sender", self.sender.lower())
        object.__setattr__(self, "_signal", self.signal.lower())
        object.__setattr__(self, "_receiver", self.receiver.lower())
        object.__setattr__(self, "_process", self.process.lower())
        object.__setattr__(self, "_task", self.task.lower())
        # Whole nanoseconds, so that 2.007 ms admits a send of exactly 2_007_000 ns
        # (2.007 * 1e6 is 2007000.0000000002 in floating point).
        threshold = None if self.min_duration_ms is None else round(self.min_duration_ms * 1e6)
        object.__setattr__(self, "_min_duration_ns", threshold)

    @classmethod
    def parse(cls, data: Mapping[str, Any], *, ignore: Collection[str] = ()) -> EventFilter:
        """Build a filter from request.GET or a decoded JSON object; raise FilterError if unusable.

        Keys in ``ignore`` (such as the "HEADERS" htmx's ws extension adds) are skipped.
        """
        if not isinstance(data, Mapping):
            raise FilterError(f"Filters must be an object of named fields; got {_kind(data)}.")
        # Keys that are not strings are never field names (nor, then, in ``ignore``).
        unknown = [
            key
            for key in data
            if not isinstance(key, str) or (key not in cls.FIELDS and key not in ignore)
        ]
        if unknown:
            raise FilterError(
                f"Unknown filter field(s): {_list_keys(unknown)}. Known: {', '.join(cls.FIELDS)}."
            )
        text = {name: _parse_text(name, data.get(name)) for name in _TEXT_FIELDS}
        hidden = {name: _parse_labels(name, data.get(name)) for name in _HIDE_FIELDS}
        return cls(
            **text,
            kind=_parse_kind(data.get("kind")),
            min_duration_ms=_parse_duration(data.get("min_duration_ms")),
            errors_only=_parse_flag(data.get("errors_only")),
            **hidden,
        )

    def matches(self, row: Row) -> bool:
        """Whether an event row (``SignalEvent.as_row()``) passes this filter."""
        if self.errors_only and row["ok"]:
            return False
        if self._min_duration_ns is not None and row["duration_ns"] < self._min_duration_ns:
            return False
        if self._sender and self._sender not in row["sender"].lower():
            return False
        if self._signal and self._signal not in row["signal"].lower():
            return False
        if self._receiver and not any(
            self._receiver in receiver.lower() for receiver in row["receivers"]
        ):
            return False
        if self._process:
            origin = row["origin"]
            if self._process not in f"{origin.get('host')}:{origin.get('pid')}".lower():
                return False
        if self.hide_signals and row["signal"] in self.hide_signals:
            return False
        if self.hide_senders and row["sender"] in self.hide_senders:
            return False
        receivers = row["receivers"]
        if self.hide_receivers and receivers and self.hide_receivers.issuperset(receivers):
            return False
        if (self.kind or self._task) and not self._matches_origin(row["origin"]):
            return False
        if self.path:
            path = row["origin"].get("path")
            return path is not None and path.startswith(self.path)
        return True

    def _matches_origin(self, origin: Mapping[str, Any]) -> bool:
        """Whether what caused a send, or a request's summary, passes kind and task."""
        if self.kind and origin.get("kind") != self.kind:
            return False
        if self._task:
            if origin.get("kind") != "task":
                return False
            name, task_id = origin.get("name") or "", origin.get("task_id") or ""
            return self._task in name.lower() or self._task == task_id.lower()
        return True

    def matches_request(self, summary: Mapping[str, Any]) -> bool:
        """Whether a request, command or task summary (``queries.request_summary()``) passes
        the fields it can answer: path, process, kind, task, receiver (one it ran), minimum
        duration (its own) and errors only (a 5xx answer, a command that raised, a task that
        failed)."""
        if self.errors_only and not summary["failed"]:
            return False
        if self._min_duration_ns is not None:
            duration = summary["duration_ns"]
            if duration is None or duration < self._min_duration_ns:
                return False
        if self._process and self._process not in f"{summary['host']}:{summary['pid']}".lower():
            return False
        if self._receiver and not any(
            self._receiver in receiver.lower() for receiver in summary["receivers"]
        ):
            return False
        if (self.kind or self._task) and not self._matches_origin(summary):
            return False
        if self.path:
            path = summary.get("path")
            return path is not None and path.startswith(self.path)
        return True

    def matches_labels(self, signal: str, sender: str, receiver: str) -> bool:
        """Whether the sender, signal and receiver fields, and the hidden labels, admit these
        labels (the other fields are not looked at)."""
        return (
            (not self._sender or self._sender in sender.lower())
            and (not self._signal or self._signal in signal.lower())
            and (not self._receiver or self._receiver in receiver.lower())
            and signal not in self.hide_signals
            and sender not in self.hide_senders
            and receiver not in self.hide_receivers
        )

    @property
    def needs_events(self) -> bool:
        """Whether a field is set that only single events can answer (not aggregates)."""
        return bool(
            self.path
            or self.process
            or self.task
            or self.kind
            or self.min_duration_ms is not None
            or self.errors_only
        )

    def without_event_fields(self) -> EventFilter:
        """This filter with path, process, task, kind, minimum duration and errors only
        cleared."""
        return dataclasses.replace(
            self, path="", process="", task="", kind="", min_duration_ms=None, errors_only=False
        )

    def with_hidden(self, field_name: str, label: str) -> EventFilter:
        """This filter hiding one more signal, sender or receiver (``hide_signals``, ...)."""
        if field_name not in _HIDE_FIELDS:
            raise FilterError(f"Only {', '.join(_HIDE_FIELDS)} can hide; got {_quote(field_name)}.")
        labels = getattr(self, field_name) | {_parse_text(field_name, label)}
        if len(labels) > MAX_HIDDEN:
            raise FilterError(f"{field_name} can hold at most {MAX_HIDDEN} labels.")
        return dataclasses.replace(self, **{field_name: frozenset(labels)})

    def describe(self) -> str:
        """The filter in words, for messages: "sender=pizzeria.Topping, errors_only=on"."""
        query = self.to_query()
        if not query:
            return "no filter (every event is shown)"
        return ", ".join(f"{name}={value}" for name, value in query.items())

    def to_query(self) -> dict[str, str]:
        """The fields that differ from the defaults, as strings for a URL's query."""
        query = {name: getattr(self, name) for name in _TEXT_FIELDS if getattr(self, name)}
        if self.kind:
            query["kind"] = self.kind
        if self.min_duration_ms is not None:
            query["min_duration_ms"] = _format_number(self.min_duration_ms)
        if self.errors_only:
            query["errors_only"] = "on"  # what a checked HTML checkbox sends
        for name in _HIDE_FIELDS:
            if getattr(self, name):
                query[name] = ",".join(sorted(getattr(self, name)))
        return query

    @property
    def active(self) -> bool:
        """Whether this filter hides anything, that is whether any field is set."""
        return bool(
            self.sender
            or self.signal
            or self.receiver
            or self.path
            or self.process
            or self.task
            or self.kind
            or self.min_duration_ms is not None
            or self.errors_only
            or self.hide_signals
            or self.hide_senders
            or self.hide_receivers
        )


def _parse_labels(name: str, value: object) -> frozenset[str]:
    """Comma-separated labels (or, from JSON, a list of them), each as long as a text field."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        parts: list[object] = list(value.split(","))
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        raise FilterError(f"{name} must be comma-separated labels; got {_kind(value)}.")
    labels = frozenset(label for label in (_parse_text(name, part) for part in parts) if label)
    if len(labels) > MAX_HIDDEN:
        raise FilterError(f"{name} can hold at most {MAX_HIDDEN} labels; got {len(labels)}.")
    return labels


def _parse_text(name: str, value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise FilterError(f"{name} must be text; got {_kind(value)}.")
    value = value.strip()
    if len(value) > MAX_TEXT_LENGTH:
        raise FilterError(
            f"{name} is too long: at most {MAX_TEXT_LENGTH} characters, got {len(value)}."
        )
    return value


def _parse_kind(value: object) -> str:
    """One of ORIGIN_KINDS, or "" (any); from a form, a one-item list of it."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None or value == "":
        return ""
    if type(value) is not str:
        raise FilterError(f"kind must be text; got {_kind(value)}.")
    if value not in ORIGIN_KINDS:
        raise FilterError(
            f"kind must be one of {', '.join(ORIGIN_KINDS)}; got {_quote(str(value))}."
        )
    return str(value)


def _parse_duration(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        try:
            number = float(value)
        except ValueError:
            raise FilterError(
                f"min_duration_ms must be a number of milliseconds; got {_quote(value)}."
            ) from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int beyond float's range: out of bounds either way
            number = math.inf if value > 0 else -math.inf
    else:
        raise FilterError(f"min_duration_ms must be a number of milliseconds; got {_kind(value)}.")
    # Infinities fail the range checks below.
    if math.isnan(number):
        raise FilterError("min_duration_ms must be a number of milliseconds; got NaN.")
    if number < 0:
        raise FilterError("min_duration_ms cannot be negative.")
    if number > MAX_DURATION_MS:
        raise FilterError(f"min_duration_ms can be at most {MAX_DURATION_MS} (one hour).")
    return number + 0.0  # -0.0 becomes 0.0


def _parse_flag(value: object) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        got = _quote(value)
    else:
        got = _kind(value)
    raise FilterError(f"errors_only must be on or off (true/false, yes/no, 1/0); got {got}.")


def _format_number(number: float) -> str:
    """5.0 as "5", 2.5 as "2.5": short, and float() reads it back exactly."""
    return str(int(number)) if number.is_integer() else repr(number)


def _kind(value: object) -> str:
    """A user's name for a value's type, as JSON calls them where it can."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a value of type {type(value).__name__}"


def _quote(text: str) -> str:
    """User input quoted back: shortened, with its control characters escaped."""
    if len(text) > _MAX_QUOTED:
        text = text[:_MAX_QUOTED] + "…"
    return repr(text)


def _list_keys(keys: list[object]) -> str:
    # Other keys than strings are described by their type: their repr is arbitrary code.
    names = [_quote(key)[1:-1] if isinstance(key, str) else f"<{_kind(key)}>" for key in keys]
    listed = ", ".join(sorted(names)[:_MAX_UNKNOWN_LISTED])
    extra = len(names) - _MAX_UNKNOWN_LISTED
    return f"{listed} and {extra} more" if extra > 0 else listed
