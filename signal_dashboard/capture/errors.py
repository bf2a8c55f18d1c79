"""A receiver's exception, as the dashboard shows it: type, message and traceback text."""

from __future__ import annotations

import linecache
import traceback
from types import TracebackType
from typing import Any

# Between two exceptions of a chain, as Python prints them.
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"
# The shortest text a frame takes in a traceback: no more frames than fit in its length are kept.
_MIN_FRAME_TEXT = 20
# As Python's tracebacks do, a frame repeated more than this many times in a row (a recursion)
# is printed this many times, then counted.
_RECURSIVE_CUTOFF = 3

# A frame of a traceback (file name, line number, function name) and how many times in a row
# it was repeated.
_Frames = tuple[tuple[tuple[str, int, str], int], ...]
# One exception of a chain: the line that introduces it, its frames, its last line(s).
_Link = tuple[str, _Frames, str]


class ErrorInfo:
    """An exception raised by a receiver: its type and message, and the traceback text.

    When the exception is raised only its frames' file names, line numbers and function names
    are taken (a few microseconds). The traceback is written, source lines included, the first
    time it is read: Python's own formatting takes some 200 µs, most of it for the column
    markers (``^^^``), which this one leaves out.
    """

    __slots__ = ("_chain", "_max_length", "_traceback", "message", "type")

    def __init__(self, type: str, message: str, traceback: str = "") -> None:
        self.type = type
        self.message = message
        self._traceback = traceback
        self._chain: tuple[_Link, ...] = ()
        self._max_length = 0

    @classmethod
    def from_exception(cls, exc: BaseException, max_length: int, skip_frames: int = 0) -> ErrorInfo:
        """``skip_frames``: how many of the exception's own outermost frames to leave out (not
        of the exceptions it was raised from or while handling)."""
        kind = type(exc)
        try:
            message = str(exc)
        except Exception:  # str() of an exception is user code
            message = "<message unavailable>"
        info = cls(f"{kind.__module__}.{kind.__qualname__}", message[:max_length])
        info._max_length = max_length
        tb = exc.__traceback__
        for _ in range(skip_frames):
            tb = tb.tb_next if tb is not None else None
        if isinstance(exc, BaseExceptionGroup):  # rare: Python's text, sub-exceptions and all
            text = "".join(traceback.format_exception(kind, exc, tb))
            info._traceback = _bounded(text, max_length)
        else:
            info._chain = _chain(exc, tb, max_length // _MIN_FRAME_TEXT + 1)
        return info

    @property
    def traceback(self) -> str:
        """The traceback as Python prints it, without column markers; at most the configured
        length, its end kept."""
        chain = self._chain
        if chain:
            self._traceback = _bounded(_format_chain(chain), self._max_length)
            self._chain = ()
        return self._traceback

    def __repr__(self) -> str:
        return f"<ErrorInfo {self.type}: {self.message[:80]!r}>"


def _chain(exc: BaseException, tb: TracebackType | None, max_frames: int) -> tuple[_Link, ...]:
    """The exception (its frames from ``tb`` on) and those it was raised from or while
    handling, oldest first."""
    links: list[_Link] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        runs: list[list[Any]] = []
        if current is not exc:
            tb = current.__traceback__
        for frame, line_number in traceback.walk_tb(tb):
            code = frame.f_code
            where = (code.co_filename, line_number, code.co_name)
            if runs and runs[-1][0] == where:
                runs[-1][1] += 1
                continue
            # As Python's traceback does, for sources that only the module's loader has.
            linecache.lazycache(code.co_filename, frame.f_globals)
            runs.append([where, 1])
        if current.__cause__ is not None:
            following, intro = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            following, intro = current.__context__, _CONTEXT
        else:
            following, intro = None, ""
        last = "".join(traceback.format_exception_only(current))
        # The introduction is printed after the older exception it names, before this one.
        links.append((intro, tuple((where, count) for where, count in runs[-max_frames:]), last))
        current = following
    links.reverse()
    return tuple(links)


def _format_chain(chain: tuple[_Link, ...]) -> str:
    parts = []
    for intro, frames, last in chain:
        parts.append(intro)
        if frames:
            parts.append("Traceback (most recent call last):\n")
        for where, count in frames:
            shown = min(count, _RECURSIVE_CUTOFF)
            parts.extend(traceback.StackSummary.from_list([(*where, None)] * shown).format())
            if count > shown:
                more = count - shown
                parts.append(
                    f"  [Previous line repeated {more} more time{'s' if more > 1 else ''}]\n"
                )
        parts.append(last)
    return "".join(parts)


def _bounded(text: str, max_length: int) -> str:
    return "…" + text[-max_length:] if len(text) > max_length else text
