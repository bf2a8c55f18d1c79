"""``manage.py signals_tail``: its refusals, its line format and filtering, and runs against the
in-memory channel layer passed off as the shared transport."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import Awaitable, Callable
from datetime import datetime
from io import StringIO
from typing import Any

import pytest
from channels.layers import BaseChannelLayer
from django.core.management import call_command
from django.core.management.base import CommandError
from django.dispatch import Signal

from signal_dashboard.backends import RedisBackend
from signal_dashboard.capture.context import HOST, PID, PROCESS_ORIGIN, Origin, current_origin
from signal_dashboard.management.commands import signals_tail
from signal_dashboard.management.commands.signals_tail import (
    MAX_ERROR_LENGTH,
    format_row,
    matching_rows,
)
from signal_dashboard.record.broadcast import GROUP
from signal_dashboard.record.filters import EventFilter
from signal_dashboard.tracing import capture

# A receive that waits this long means the command missed its way out (seconds).
HANG_GUARD = 5.0

pizza_baked = Signal()


class Pizza:
    pass


class Oven:
    pass


def on_baked(sender: Any, **kwargs: Any) -> None:
    if sender is Oven:
        # What a careless receiver or a client can put in a message: a line break and a
        # terminal escape sequence (clear screen).
        raise RuntimeError("oven on fire\n\x1b[2J")


def on_boxed(sender: Any, **kwargs: Any) -> None:
    pass


pizza_baked.connect(on_baked)
pizza_baked.connect(on_boxed)


def rows_for(*senders: type, origin: Origin | None = None) -> list[dict[str, Any]]:
    """Real rows: ``pizza_baked`` sent through tracing once per sender."""
    token = current_origin.set(origin) if origin else None
    try:
        with capture() as events:
            for sender in senders:
                pizza_baked.send_robust(sender=sender)
    finally:
        if token:
            current_origin.reset(token)
    return [event.as_row() for event in events]


def batch(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "signal.batch", "rows": rows, "first": 0, "dropped": 0, "rate": 1.0}


class Hung(Exception):
    pass


@pytest.fixture
def layer(monkeypatch: pytest.MonkeyPatch) -> BaseChannelLayer:
    """The in-memory layer, passed off as the Redis transport; a receive that hangs fails."""
    monkeypatch.setattr(signals_tail, "backend", RedisBackend)  # with no REDIS_URL: in-memory
    layer = RedisBackend().tail_layer()
    receive = layer.receive

    async def guarded_receive(channel: str) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(receive(channel), HANG_GUARD)
        except TimeoutError:
            raise Hung(f"nothing ended the tail within {HANG_GUARD} s") from None

    monkeypatch.setattr(layer, "receive", guarded_receive)
    return layer


def on_join(
    monkeypatch: pytest.MonkeyPatch,
    layer: BaseChannelLayer,
    then: Callable[[str], Awaitable[None]] | None = None,
) -> list[str]:
    """Run ``then(channel)`` on the command's event loop as soon as it has joined the group, so
    what a test publishes cannot race the join; returns the channels that joined."""
    joined: list[str] = []
    group_add = layer.group_add

    async def join_then(group: str, channel: str) -> None:
        await group_add(group, channel)
        joined.append(channel)
        if then is not None:
            await then(channel)

    monkeypatch.setattr(layer, "group_add", join_then)
    return joined


def members(layer: BaseChannelLayer) -> set[str]:
    return set(layer.groups.get(GROUP, {}))


# -- refusals ---------------------------------------------------------------------------------


def test_refuses_without_the_redis_transport() -> None:
    # The timeout only bounds the run should the command go ahead regardless.
    with pytest.raises(CommandError, match=r"needs the Redis transport") as info:
        call_command("signals_tail", "--timeout=0.01")
    assert '"REDIS_URL"' in str(info.value)
    assert "dashboard page" in str(info.value)


def test_bad_filter_value_is_the_only_output_and_exits_1() -> None:
    out, err = StringIO(), StringIO()
    command = signals_tail.Command(stdout=out, stderr=err)
    with pytest.raises(SystemExit) as info:
        command.run_from_argv(
            ["manage.py", "signals_tail", "--skip-checks", "--min-duration-ms=-1"]
        )
    assert info.value.code == 1
    assert err.getvalue() == "CommandError: min_duration_ms cannot be negative.\n"
    assert out.getvalue() == ""


def test_bad_filter_value_raises_the_filters_message() -> None:
    with pytest.raises(CommandError) as info:
        call_command("signals_tail", min_duration_ms="soon")
    assert str(info.value) == "min_duration_ms must be a number of milliseconds; got 'soon'."


def test_every_filter_field_is_an_option() -> None:
    parser = signals_tail.Command().create_parser("manage.py", "signals_tail")
    options = {option for action in parser._actions for option in action.option_strings}
    for name in EventFilter.FIELDS:
        assert "--" + name.replace("_", "-") in options
    # A switch takes no value.
    assert parser.parse_args(["--errors-only"]).errors_only is True


# -- lines and filtering ----------------------------------------------------------------------


def test_a_row_is_one_line_of_time_signal_sender_receivers_duration_outcome_origin() -> None:
    [row] = rows_for(Pizza)
    started = datetime(2024, 5, 6, 7, 8, 9, 123_000)
    row.update(timestamp=started.timestamp(), duration_ns=2_345_678)
    assert format_row(row) == (
        "07:08:09.123  test_tail.pizza_baked  tests.test_tail.Pizza  2 receivers  2.346 ms  ok  "
        f"process {PROCESS_ORIGIN.name}  [{HOST}:{PID}]"
    )


def test_a_row_says_how_many_queries_its_receivers_ran_when_they_ran_any() -> None:
    [row] = rows_for(Pizza)
    assert "quer" not in format_row(row)
    row.update(queries=3)
    assert "  2 receivers  " in format_row(row)
    assert re.search(r" ms  3 queries  ok  ", format_row(row))
    row.update(queries=1)
    assert re.search(r" ms  1 query  ok  ", format_row(row))


def test_a_request_is_shown_by_method_and_path_a_command_by_name() -> None:
    request = Origin(kind="request", name="GET /menu/", method="GET", path="/menu/")
    [from_request] = rows_for(Pizza, origin=request)
    [from_command] = rows_for(Pizza, origin=Origin(kind="command", name="migrate"))
    assert f"  ok  GET /menu/  [{HOST}:{PID}]" in format_row(from_request)
    assert f"  ok  command migrate  [{HOST}:{PID}]" in format_row(from_command)


def test_a_task_run_is_shown_by_its_name_and_a_wrong_kind_is_refused() -> None:
    run = Origin(kind="task", name="shop.tasks.send_receipt", task_id="abc", backend="default")
    [from_task] = rows_for(Pizza, origin=run)
    assert f"  ok  task shop.tasks.send_receipt  [{HOST}:{PID}]" in format_row(from_task)
    with pytest.raises(CommandError) as info:
        call_command("signals_tail", kind="tasks")
    assert (
        str(info.value) == "kind must be one of request, command, task, test, process; got 'tasks'."
    )


def test_an_error_stays_on_one_line_and_sends_no_escape_sequence() -> None:
    [row] = rows_for(Oven)
    line = format_row(row)
    assert "  ERROR: builtins.RuntimeError: oven on fire\\n\\x1b[2J  " in line
    assert "\n" not in line
    assert "\x1b" not in line


def test_a_long_error_is_cut_short() -> None:
    [row] = rows_for(Oven)
    row["error"] = "E" * (MAX_ERROR_LENGTH + 1)
    assert f"  ERROR: {'E' * MAX_ERROR_LENGTH}…  " in format_row(row)


def test_matching_rows_keeps_the_batchs_order() -> None:
    rows = rows_for(Pizza, Oven, Pizza)
    assert matching_rows(batch(rows), EventFilter(sender="PIZZA")) == [rows[0], rows[2]]
    assert matching_rows(batch(rows), EventFilter(errors_only=True)) == [rows[1]]
    assert matching_rows(batch(rows), EventFilter()) == rows


def test_matching_rows_ignores_other_messages() -> None:
    assert matching_rows({"type": "stats.changed", "rows": rows_for(Pizza)}, EventFilter()) == []


# -- runs against the layer -------------------------------------------------------------------


def test_prints_the_filtered_rows_of_a_published_batch_as_json(
    monkeypatch: pytest.MonkeyPatch, layer: BaseChannelLayer
) -> None:
    rows = rows_for(Oven, Pizza, Pizza)

    async def publish(channel: str) -> None:
        # As the transport sends it, with keys the command has no use for.
        await layer.group_send(GROUP, {**batch(rows), "source": "elsewhere:1"})

    joined = on_join(monkeypatch, layer, publish)
    out = StringIO()
    call_command("signals_tail", "--json", "--limit=1", "--sender=pizza", stdout=out)
    # Oven's row fails the filter, and the limit leaves out the second Pizza.
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [rows[1]]
    assert joined
    assert joined[0] not in members(layer)


def test_prints_text_lines_by_default(
    monkeypatch: pytest.MonkeyPatch, layer: BaseChannelLayer
) -> None:
    rows = rows_for(Pizza, Oven)

    async def publish(channel: str) -> None:
        await layer.group_send(GROUP, batch(rows))

    on_join(monkeypatch, layer, publish)
    out = StringIO()
    call_command("signals_tail", "--limit=2", stdout=out)
    assert out.getvalue() == f"{format_row(rows[0])}\n{format_row(rows[1])}\n"


def test_the_timeout_ends_a_quiet_tail(
    monkeypatch: pytest.MonkeyPatch, layer: BaseChannelLayer
) -> None:
    async def publish(channel: str) -> None:
        await layer.group_send(GROUP, batch(rows_for(Oven)))

    joined = on_join(monkeypatch, layer, publish)
    out = StringIO()
    call_command("signals_tail", "--sender=pizza", "--timeout=0.05", stdout=out)
    assert out.getvalue() == ""
    assert joined
    assert joined[0] not in members(layer)


def test_the_tails_own_signals_are_not_traced(
    monkeypatch: pytest.MonkeyPatch, layer: BaseChannelLayer
) -> None:
    rows = rows_for(Pizza)

    async def send_own_signal(channel: str) -> None:
        pizza_baked.send(sender=Pizza)  # as the layer's own code might
        await layer.group_send(GROUP, batch(rows))

    on_join(monkeypatch, layer, send_own_signal)
    with capture() as events:
        call_command("signals_tail", "--limit=1", stdout=StringIO())
    assert events == []


def test_ctrl_c_ends_the_tail_quietly(
    monkeypatch: pytest.MonkeyPatch, layer: BaseChannelLayer
) -> None:
    async def press_ctrl_c(channel: str) -> None:
        signal.raise_signal(signal.SIGINT)

    joined = on_join(monkeypatch, layer, press_ctrl_c)
    out, err = StringIO(), StringIO()
    # Python's own handler, as at a terminal: a suite started in the background (``&``) inherits
    # SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        call_command("signals_tail", stdout=out, stderr=err)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped the command")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert out.getvalue() == err.getvalue() == ""
    assert joined
    assert joined[0] not in members(layer)


@pytest.mark.parametrize("method", ["group_add", "receive"])
def test_a_failing_layer_is_a_command_error(
    monkeypatch: pytest.MonkeyPatch, layer: BaseChannelLayer, method: str
) -> None:
    async def refuse(*args: Any) -> None:
        raise ConnectionRefusedError("Connect call failed ('127.0.0.1', 6379)")

    joined = on_join(monkeypatch, layer)
    monkeypatch.setattr(layer, method, refuse)
    with pytest.raises(CommandError) as info:
        call_command("signals_tail", stdout=StringIO())
    assert str(info.value) == (
        "Lost the channel layer: ConnectionRefusedError: Connect call failed ('127.0.0.1', 6379)"
        "\nIs Redis running at SIGNAL_DASHBOARD['REDIS_URL']?"
    )
    # A failure after joining still leaves the group.
    assert not set(joined) & members(layer)
