"""The queries each receiver call makes: counted, timed and shown, the queries themselves
untouched."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.db import connection, connections
from django.db.models.signals import post_save
from django.dispatch import Signal
from django.test.utils import CaptureQueriesContext

from signal_dashboard import tracing
from signal_dashboard.capture import queries as database
from signal_dashboard.capture.context import Origin, current_origin
from signal_dashboard.capture.events import SignalEvent
from signal_dashboard.demo.pizzeria.models import Pizza, Topping
from signal_dashboard.record.recorder import recorder
from signal_dashboard.record.stats.table import TableQuery
from tests.postgres_server import PostgresServer
from tests.receiving import connected

pytestmark = pytest.mark.django_db

SECRET = "hunter2-never-shown"
REPO = Path(__file__).resolve().parent.parent
inner_signal = Signal()


def count_twice_and_look_up(sender: Any, instance: Topping, **kwargs: Any) -> None:
    Topping.objects.count()
    Topping.objects.count()
    Topping.objects.filter(name=SECRET).exists()


def look_up_then_send(sender: Any, instance: Topping, **kwargs: Any) -> None:
    Pizza.objects.count()
    inner_signal.send(sender=Topping)


def count_pizzas(sender: Any, **kwargs: Any) -> None:
    Pizza.objects.filter(name="margherita").count()


@pytest.fixture
def receivers() -> Iterator[None]:
    with connected(post_save, count_twice_and_look_up, sender=Topping):
        yield


@pytest.fixture
def nested() -> Iterator[None]:
    with (
        connected(post_save, look_up_then_send, sender=Topping),
        connected(inner_signal, count_pizzas),
    ):
        yield


def saves(events: list[SignalEvent]) -> list[SignalEvent]:
    return [event for event in events if event.signal is post_save]


def test_each_receiver_call_has_its_queries_grouped_by_statement_never_with_values(
    receivers: None,
) -> None:
    with tracing.capture() as events:
        Topping.objects.create(name="basil")
    (save,) = saves(events)
    (call,) = save.receivers
    made = call.queries
    assert (made.count, made.total_count) == (3, 3)
    assert 0 < made.duration_ns <= call.duration_ns
    counted, looked_up = made.statements
    assert counted["count"] == 2
    assert counted["sql"].startswith('SELECT COUNT(*) AS "__count" FROM "pizzeria_topping"')
    assert looked_up["count"] == 1
    assert "%s" in looked_up["sql"]
    exported = json.dumps(save.as_dict())
    assert SECRET not in exported
    assert save.as_dict()["queries_total"]["count"] == 3
    assert save.as_dict()["receivers"][0]["queries"]["statements"][0]["count"] == 2


def test_a_nested_send_counts_for_its_receiver_and_in_the_total_of_the_one_that_made_it(
    nested: None,
) -> None:
    with tracing.capture() as events:
        Topping.objects.create(name="basil")
    (save,) = saves(events)
    (inner,) = events.filter(inner_signal)
    (outer_call,) = save.receivers
    (inner_call,) = inner.receivers
    assert (inner_call.queries.count, inner_call.queries.total_count) == (1, 1)
    assert (outer_call.queries.count, outer_call.queries.total_count) == (1, 2)
    assert outer_call.queries.total_ns >= outer_call.queries.duration_ns
    assert save.queries_total["count"] == 2


def test_queries_run_exactly_as_untraced(receivers: None) -> None:
    def scenario() -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            Topping.objects.create(name="basil")
            Topping.objects.filter(name="basil").delete()
        # (Row ids differ from run to run.)
        return [re.sub(r"\d+", "N", query["sql"]) for query in captured.captured_queries]

    tracing.uninstall()
    try:
        untraced = scenario()
        assert database.count_query not in connection.execute_wrappers
    finally:
        tracing.install()
    assert connection.execute_wrappers[0] is database.count_query
    assert scenario() == untraced
    assert len(untraced) >= 5  # the save, the receiver's three, the delete


def test_a_projects_own_execute_wrapper_runs_and_is_removed_as_without_tracing(
    receivers: None,
) -> None:
    seen = []

    def own(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    with tracing.capture() as events, connection.execute_wrapper(own):
        Topping.objects.create(name="basil")
    assert connection.execute_wrappers == [database.count_query]
    assert len(seen) == 4
    assert saves(events)[0].receivers[0].queries.count == 3


def test_a_request_counts_all_its_queries_and_a_failed_query_still_raises() -> None:
    origin = Origin(kind="command", name="test")
    token = current_origin.set(origin)
    try:
        with CaptureQueriesContext(connection) as captured:
            Topping.objects.create(name="basil")
            Topping.objects.count()
            with (
                pytest.raises(Exception, match=r"no such table|does not exist"),
                connection.cursor() as cursor,
            ):
                cursor.execute("SELECT * FROM no_such_table WHERE name = %s", [SECRET])
    finally:
        current_origin.reset(token)
    # The failed one too: it ran.
    assert origin.query_count == len(captured.captured_queries) == 3
    assert origin.query_ns > 0


@pytest.mark.django_db(transaction=True)
def test_connections_made_later_in_other_threads_are_counted(receivers: None) -> None:
    found: list[Any] = []

    def in_a_thread() -> None:
        try:
            with tracing.capture() as events:
                Topping.objects.create(name="oregano")
            found.append(saves(events)[0].receivers[0].queries.count)
            found.append(connection.execute_wrappers[0] is database.count_query)
        finally:
            connections.close_all()

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert found == [3, True]


@pytest.mark.django_db(transaction=True)
def test_async_receivers_have_their_own_queries() -> None:
    async def counts_toppings(sender: Any, **kwargs: Any) -> None:
        await Topping.objects.acount()
        await Topping.objects.acount()

    async def counts_pizzas(sender: Any, **kwargs: Any) -> None:
        await Pizza.objects.acount()

    signal = Signal()
    signal.connect(counts_toppings)
    signal.connect(counts_pizzas)

    async def send() -> None:
        await signal.asend(sender=Topping)

    with tracing.capture() as events:
        async_to_sync(send)()
    (event,) = events.filter(signal)
    made = {call.label.rpartition(".")[2]: call.queries.count for call in event.receivers}
    assert event.queries_total["count"] == 3
    if database.ASYNC_MARKED:  # Django 5.2: each async receiver runs in a task of its own
        assert made == {"counts_toppings": 2, "counts_pizzas": 1}
    else:  # Django 6: a query two running receivers might have made is theirs together
        assert sum(made.values()) <= 3


def test_folded_sends_count_each_receivers_queries_exactly(receivers: None, settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {"DETAIL_LIMIT": 2}
    origin = Origin(kind="command", name="test")
    token = current_origin.set(origin)
    try:
        for index in range(10):
            Topping.objects.create(name=f"topping-{index}")
    finally:
        current_origin.reset(token)
    tally = next(
        tally for tally in origin.sent.values() if tally.signal_key() is post_save and tally.folded
    )
    (summary,) = [
        summary
        for summary in tally.receiver_summaries()
        if summary["receiver"].endswith("count_twice_and_look_up")
    ]
    assert (summary["count"], summary["queries"], summary["total_queries"]) == (
        tally.folded,
        3 * tally.folded,
        3 * tally.folded,
    )
    assert tally.folded == 8


def test_the_detail_shows_queries_per_receiver(receivers: None, admin_client: Any) -> None:
    with tracing.capture() as events:
        Topping.objects.create(name="basil")
    (save,) = saves(events)
    recorder.drain()
    response = admin_client.get(f"/signals/events/{save.uid}/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "3 queries" in page
    assert "&times;2</span>" in page
    assert "pizzeria_topping" in page
    assert SECRET not in page


def test_user_queries_in_receivers_never_break_when_bookkeeping_fails(
    receivers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken:
        def get(self) -> None:
            raise RuntimeError("bookkeeping")

    monkeypatch.setattr(database, "current_origin", Broken())
    before = database.failures
    with tracing.capture():
        Topping.objects.create(name="basil")
    assert Topping.objects.filter(name="basil").exists()
    assert database.failures > before


def test_shown_sql_hides_literals_and_is_bounded() -> None:
    assert database.shown_sql("SELECT *\n  FROM t WHERE a = 'x''y' AND b = %s") == (
        "SELECT * FROM t WHERE a = '?' AND b = %s"
    )
    assert len(database.shown_sql("SELECT " + "x, " * 2000)) == database.SQL_SHOWN


def test_users_password_hash_never_reaches_an_export() -> None:
    def look_up_user(sender: Any, **kwargs: Any) -> None:
        User.objects.filter(username="cook").values_list("password", flat=True).first()

    user = User.objects.create_user("cook", password="pbkdf2-secret")
    with connected(post_save, look_up_user, sender=Topping), tracing.capture() as events:
        Topping.objects.create(name="basil")
    exported = json.dumps([event.as_dict() for event in events])
    assert user.password not in exported
    assert "cook" not in exported


def test_the_latency_table_counts_every_calls_queries_folded_or_not(
    receivers: None, settings: Any
) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "DETAIL_LIMIT": 2}
    recorder.clear()
    origin = Origin(kind="request", name="GET /toppings/", method="GET", path="/toppings/")
    token = current_origin.set(origin)
    try:
        with tracing.capture(limit_detail=True) as events:
            for index in range(10):
                Topping.objects.create(name=f"topping-{index}")
    finally:
        current_origin.reset(token)
    assert len(saves(events)) == 2  # the rest folded
    recorder.drain()
    (row,) = [
        row
        for row in recorder.latency.table(TableQuery())
        if row.name == f"{__name__}.count_twice_and_look_up"
    ]
    assert row.histogram.count == 10
    assert row.queries[:2] == [30, 3]
    assert row.summary["queries_per_call"] == 3.0
    assert 0 < row.summary["query_share"] <= 1
    ordered = recorder.latency.table(TableQuery(sort="queries"))
    assert ordered[0].name == row.name  # the only receiver that queries
    # The request counted every query it ran: the saves' and their receivers'.
    assert origin.query_count == 10 * (1 + 3)


def test_a_request_says_how_many_of_its_queries_its_receivers_ran(
    receivers: None, admin_client: Any
) -> None:
    recorder.clear()
    with CaptureQueriesContext(connection) as captured:
        assert admin_client.get("/toppings/save/?name=basil").status_code == 200
    recorder.drain()
    (request,) = [origin for origin in recorder.requests if origin.path == "/toppings/save/"]
    assert request.receiver_query_count == 3
    # Every query of the request (the session's and the user's too), not one more.
    assert request.query_count == len(captured.captured_queries)
    assert request.query_count > 3
    page = admin_client.get(f"/signals/requests/{request.id}/").content.decode()
    assert f"{request.query_count} queries, 3 in receivers" in page
    rows = admin_client.get("/signals/").content.decode()
    assert f"3 of {request.query_count}" in rows


def run_scenario(module: str, settings: str, **environ: str) -> dict[str, Any]:
    """What a scenario module run in a process of its own, under these settings, saw."""
    done = subprocess.run(
        [sys.executable, "-m", module],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": settings, **environ},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.postgres
def test_on_a_real_postgresql_server_side_cursors_and_async_views_are_counted() -> None:
    with PostgresServer() as server:
        seen = run_scenario(
            "tests.postgres_scenarios",
            "tests.settings_postgres",
            SIGNAL_DASHBOARD_TEST_PG_PORT=str(server.port),
        )
    assert seen["vendor"] == "postgresql"
    assert seen["same_queries"] is True
    assert seen["saves"] == [[2]]
    assert seen["walked"] == sorted(["basil", "oregano", "chili", "rocket", "olives"])
    assert seen["walk_queries"] == [1]  # one server-side cursor, read a chunk at a time
    assert seen["iterated"] == seen["walked"]
    assert seen["init_queries"] == [[1]] * 5
    assert seen["secret_shown"] is False
    assert seen["async_view"]["status"] == 200
    assert seen["async_view"]["in_receivers"] == 2
    assert seen["async_view"]["queries"] >= 3  # the insert, the receiver's two


def test_beside_django_debug_toolbars_sql_panel_both_count_every_query() -> None:
    seen = run_scenario("tests.toolbar_scenario", "tests.settings_toolbar")
    assert seen["status"] == 200
    # The save, then the receiver's two: the toolbar's panel and the dashboard agree.
    assert seen["toolbar_queries"] == seen["our_queries"] == 3
    assert seen["toolbar_sql"][0].startswith('INSERT INTO "pizzeria_topping"')
    assert seen["in_receivers"] == 2
