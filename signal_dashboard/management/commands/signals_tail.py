"""``manage.py signals_tail``: the live signal stream in a terminal, filtered like the dashboard.

The command joins the dashboards' channel-layer group, so it sees what the server processes
publish. That takes the Redis transport: the in-memory layer ends at the process that owns it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from channels.layers import BaseChannelLayer
from django.core.management.base import BaseCommand, CommandError, CommandParser

from signal_dashboard.backends import NotShared, backend
from signal_dashboard.capture.context import suspended
from signal_dashboard.capture.events import Row
from signal_dashboard.capture.labels import origin_label, short_label
from signal_dashboard.record.broadcast import GROUP
from signal_dashboard.record.filters import EventFilter, FilterError

# Errors can carry a whole exception message; the line shows its start, --json all of it.
MAX_ERROR_LENGTH = 120


def _filter_flags() -> frozenset[str]:
    """The filter fields that are on/off switches (a False default) rather than values."""
    return frozenset(
        field.name for field in dataclasses.fields(EventFilter) if field.default is False
    )


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse type: a number of this kind, above zero."""

    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
        return value

    return convert


class Command(BaseCommand):
    help = (
        "Print the live signal stream, one line per send, filtered like the dashboard page. "
        "Needs the Redis transport (SIGNAL_DASHBOARD['REDIS_URL'])."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        # Generated from the filter's fields, so a field added there is an option here.
        flags = _filter_flags()
        for name in EventFilter.FIELDS:
            option = "--" + name.replace("_", "-")
            label = name.replace("_", " ")
            if name in flags:
                parser.add_argument(
                    option, action="store_true", help=f"The dashboard's {label} filter."
                )
            else:
                parser.add_argument(option, help=f"The dashboard's {label} filter.")
        parser.add_argument(
            "--json", action="store_true", help="Print each event row as one line of JSON."
        )
        parser.add_argument(
            "--limit", type=_positive(int), metavar="N", help="Exit after printing N events."
        )
        parser.add_argument(
            "--timeout",
            type=_positive(float),
            metavar="SECONDS",
            help="Exit after this long without an event to print (default: wait forever).",
        )

    def execute(self, *args: Any, **options: Any) -> Any:
        # Signals sent by the tail itself (its Redis connections', say) would be published
        # into the very stream it prints.
        with suspended():
            return super().execute(*args, **options)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            event_filter = EventFilter.parse(
                {name: options[name] for name in EventFilter.FIELDS if options[name] is not None}
            )
        except FilterError as error:
            raise CommandError(str(error)) from None
        try:
            layer = backend().tail_layer()
        except NotShared as error:
            raise CommandError(str(error)) from None
        # Ctrl-C is how a tail normally ends: no traceback for it.
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                self.tail(
                    layer,
                    event_filter,
                    as_json=options["json"],
                    limit=options["limit"],
                    timeout=options["timeout"],
                )
            )

    async def tail(
        self,
        layer: BaseChannelLayer,
        event_filter: EventFilter,
        *,
        as_json: bool = False,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> None:
        """Print the rows that pass the filter as they arrive, until the limit or the timeout."""
        try:
            channel = await layer.new_channel()
            await layer.group_add(GROUP, channel)
        except Exception as error:
            raise _layer_failure(error) from error
        loop = asyncio.get_running_loop()
        printed = 0
        deadline = None if timeout is None else loop.time() + timeout
        try:
            while limit is None or printed < limit:
                message = await _receive(layer, channel, deadline)
                if message is None:
                    return
                rows = matching_rows(message, event_filter)
                if limit is not None:
                    rows = rows[: limit - printed]
                if not rows:
                    continue  # a status-only batch, or nothing that passes: no deadline reset
                for row in rows:
                    if as_json:
                        self.stdout.write(json.dumps(row))
                    else:
                        self.stdout.write(format_row(row), None if row["ok"] else self.style.ERROR)
                self.stdout.flush()  # piped, the lines would otherwise wait for a full buffer
                printed += len(rows)
                if timeout is not None:
                    deadline = loop.time() + timeout
        finally:
            # With Redis gone this fails too; the membership then expires on its own
            # (group_expiry), and the error that ended the tail is the one worth showing.
            with contextlib.suppress(Exception):
                await layer.group_discard(GROUP, channel)


def matching_rows(message: Mapping[str, Any], event_filter: EventFilter) -> list[Row]:
    """The rows of a ``signal.batch`` message that pass the filter, oldest first."""
    if message.get("type") != "signal.batch":
        return []
    return [row for row in message["rows"] if event_filter.matches(row)]


def format_row(row: Row) -> str:
    """One event as one terminal line: when, signal, sender, receivers, time taken, outcome,
    cause and process."""
    started = datetime.fromtimestamp(row["timestamp"])
    receivers = row["receiver_count"]
    origin = row["origin"]
    if row["ok"]:
        outcome = "ok"
    else:
        error = row["error"]
        if len(error) > MAX_ERROR_LENGTH:
            error = error[:MAX_ERROR_LENGTH] + "…"
        outcome = f"ERROR: {error}"
    cause = origin_label(origin)
    line = "  ".join(
        (
            f"{started:%H:%M:%S}.{started.microsecond // 1000:03d}",
            short_label(row["signal"]),
            row["sender"],
            f"{receivers} receiver{'' if receivers == 1 else 's'}",
            f"{row['duration_ns'] / 1e6:.3f} ms",
            *(
                (f"{queries} quer{'y' if queries == 1 else 'ies'}",)
                if (queries := row.get("queries", 0))
                else ()
            ),
            outcome,
            cause,
            f"[{origin['host']}:{origin['pid']}]",
        )
    )
    return _escape_controls(line)


def _escape_controls(text: str) -> str:
    # Senders, paths and error messages come from the app and its clients: a newline would
    # break the one-line-per-event promise, an escape sequence would reach the terminal.
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode() for char in text
    )


async def _receive(
    layer: BaseChannelLayer, channel: str, deadline: float | None
) -> dict[str, Any] | None:
    """The next message on the channel, or None once the loop's clock passes the deadline."""
    try:
        async with asyncio.timeout_at(deadline) as scope:
            return await layer.receive(channel)
    except Exception as error:
        # The layer may time out on its own (a Redis socket); only our deadline ends quietly.
        if isinstance(error, TimeoutError) and scope.expired():
            return None
        raise _layer_failure(error) from error


def _layer_failure(error: Exception) -> CommandError:
    return CommandError(
        f"Lost the channel layer: {type(error).__name__}: {error}\n"
        "Is Redis running at SIGNAL_DASHBOARD['REDIS_URL']?"
    )
