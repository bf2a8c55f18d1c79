"""Event records: their forms, and the receivers' errors."""

from __future__ import annotations

import re
import traceback
from typing import Any

from django.dispatch import Signal

from signal_dashboard.capture.errors import ErrorInfo
from signal_dashboard.tracing import capture

# The column markers Python's tracebacks add under a frame's source line ("^^^", "~~~^^").
MARKERS = re.compile(r"^ +[~^]+ *\n", re.MULTILINE)


def raise_chained() -> None:
    try:
        try:
            {}["missing"]
        except KeyError:
            int("not a number")  # raised while handling the KeyError
    except ValueError as error:
        raise RuntimeError("could not bake") from error


def caught(function) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        function()
    except BaseException as error:
        return error
    raise AssertionError("nothing was raised")


def test_the_traceback_is_pythons_without_column_markers() -> None:
    error = caught(raise_chained)
    info = ErrorInfo.from_exception(error, max_length=100_000)
    assert info.traceback == python_text(error, 100_000)
    assert "direct cause" in info.traceback
    assert "During handling" in info.traceback
    assert 'int("not a number")' in info.traceback  # the source lines, read when formatted
    assert info.type == "builtins.RuntimeError"
    assert info.message == "could not bake"


def test_a_suppressed_context_is_left_out_as_python_does() -> None:
    def raise_from_none() -> None:
        try:
            {}["missing"]
        except KeyError:
            raise LookupError("gone") from None

    error = caught(raise_from_none)
    info = ErrorInfo.from_exception(error, max_length=100_000)
    assert info.traceback == python_text(error, 100_000)
    assert "KeyError" not in info.traceback


def python_text(error: BaseException, max_length: int) -> str:
    """What Python prints for the error, less the column markers, bounded as an event keeps it."""
    text = MARKERS.sub("", "".join(traceback.format_exception(error)))
    return "…" + text[-max_length:] if len(text) > max_length else text


def test_a_recursion_is_counted_as_python_counts_it() -> None:
    def recurse(depth: int) -> None:
        if depth:
            recurse(depth - 1)
        raise ValueError("at the bottom")

    error = caught(lambda: recurse(200))
    info = ErrorInfo.from_exception(error, max_length=100_000)
    assert "[Previous line repeated 197 more times]" in info.traceback
    assert info.traceback == python_text(error, 100_000)


def test_a_long_traceback_keeps_its_end() -> None:
    def ping(depth: int) -> None:
        if depth:
            pong(depth - 1)
        raise ValueError("at the bottom")

    def pong(depth: int) -> None:
        ping(depth)

    error = caught(lambda: ping(100))
    info = ErrorInfo.from_exception(error, max_length=500)
    assert len(info.traceback) == 501
    assert info.traceback == python_text(error, 500)


def test_an_exception_group_is_formatted_whole() -> None:
    def raise_group() -> None:
        raise ExceptionGroup("two", [ValueError("first"), TypeError("second")])

    info = ErrorInfo.from_exception(caught(raise_group), max_length=100_000)
    assert "ValueError: first" in info.traceback
    assert "TypeError: second" in info.traceback


def test_an_exception_whose_str_raises_is_still_described() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    def raise_unprintable() -> None:
        raise Unprintable

    info = ErrorInfo.from_exception(caught(raise_unprintable), max_length=100_000)
    assert info.message == "<message unavailable>"
    assert "Unprintable" in info.traceback


def test_row_and_dict_made_together_are_those_made_apart() -> None:
    signal = Signal()

    def answers(sender: Any, **kwargs: Any) -> str:
        return "yes"

    def refuses(sender: Any, **kwargs: Any) -> None:
        raise PermissionError("no")

    signal.connect(answers, weak=False)
    signal.connect(refuses, weak=False)
    with capture() as events:
        signal.send_robust(sender="test", size="large")
    [event] = events
    row, data = event.as_row_and_dict()
    assert (row, data) == (event.as_row(), event.as_dict())
    assert row["error"] == "builtins.PermissionError: no"
    assert data["receivers"][0]["result"] == "yes"
