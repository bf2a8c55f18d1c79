"""Findings about the queries receivers make: an init receiver that queries, the same
statement repeated by one receiver in one request (N+1), a receiver that queries too much."""

from __future__ import annotations

import json
from collections.abc import Iterator
from time import perf_counter_ns
from typing import Any

import pytest
from django.db import transaction
from django.db.models.signals import post_init, post_save

from signal_dashboard import tracing
from signal_dashboard.capture.context import Origin, current_origin
from signal_dashboard.capture.finding import Finding
from signal_dashboard.demo.pizzeria.models import Pizza, Topping
from signal_dashboard.record import findings as querying
from signal_dashboard.record.recorder import recorder
from tests.receiving import connected

pytestmark = pytest.mark.django_db

REPEATS = 12


def look_up_pizzas_each_time(sender: Any, instance: Topping, **kwargs: Any) -> None:
    for index in range(REPEATS):
        Pizza.objects.filter(name=f"pizza-{index}").exists()  # the N+1: one statement, N times


def save_in_savepoints(sender: Any, instance: Topping, **kwargs: Any) -> None:
    # Each outer atomic() is a BEGIN and its COMMIT, and the inner one a SAVEPOINT of the same
    # name each time (Django numbers them afresh in each transaction) and its RELEASE.
    for index in range(REPEATS):
        with transaction.atomic(), transaction.atomic():
            Pizza.objects.create(name=f"pizza-{index}", price=10)


def count_pizzas_on_init(sender: Any, instance: Topping, **kwargs: Any) -> None:
    Pizza.objects.count()


def findings(kind: str) -> list[Finding]:
    recorder.drain()
    recorder.drain()  # (findings judged in one drain are recorded by the next)
    return [finding for finding in recorder.findings if finding.kind == kind]


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    recorder.clear()
    querying._init_found.clear()
    yield
    querying._init_found.clear()


@pytest.fixture
def n_plus_one() -> Iterator[None]:
    with connected(post_save, look_up_pizzas_each_time, sender=Topping):
        yield


def line_of(function: Any) -> str:
    code = function.__code__
    return f"{code.co_filename}:{code.co_firstlineno}"


def test_the_same_statement_n_times_in_one_request_is_found_with_the_receivers_line(
    n_plus_one: None, client: Any
) -> None:
    assert client.get("/toppings/save/?name=basil").status_code == 200
    (found,) = findings("query_repeated")
    assert found.count == REPEATS
    assert found.receiver == f"{__name__}.look_up_pizzas_each_time"
    assert found.locations == [line_of(look_up_pizzas_each_time)]
    assert found.statement.startswith('SELECT %s AS "a" FROM "pizzeria_pizza" WHERE')
    assert "%s" in found.statement
    assert "pizza-" not in found.statement  # the values are never shown
    assert found.origin["path"] == "/toppings/save/"
    assert found.message.startswith(
        f"Same query {REPEATS} times in one receiver: test_findings.look_up_pizzas_each_time "
        'ran SELECT %s AS "a"'
    )
    assert "in one request (GET /toppings/save/)" in found.message
    record = found.as_dict()
    assert (record["type"], record["count"]) == ("query_repeated", REPEATS)
    assert json.loads(json.dumps(record)) == record
    assert findings("query_heavy") == []  # 12 is not more than 100


def test_below_the_threshold_nothing_is_found_and_the_threshold_is_a_setting(
    n_plus_one: None, client: Any, settings: Any
) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "QUERY_REPEAT_THRESHOLD": 13}
    client.get("/toppings/save/?name=basil")
    assert findings("query_repeated") == []
    settings.SIGNAL_DASHBOARD = {
        **settings.SIGNAL_DASHBOARD,
        "QUERY_REPEAT_THRESHOLD": REPEATS,
        "QUERY_REQUEST_THRESHOLD": REPEATS - 1,
    }
    client.get("/toppings/save/?name=oregano")
    assert [finding.count for finding in findings("query_repeated")] == [REPEATS]
    (heavy,) = findings("query_heavy")
    assert heavy.count == REPEATS
    assert heavy.message.startswith(f"Receiver ran {REPEATS} queries in one request")


def test_a_folded_receivers_queries_count_toward_the_findings(settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {
        **settings.SIGNAL_DASHBOARD,
        "DETAIL_LIMIT": 1,
        "QUERY_REPEAT_THRESHOLD": 5,
    }

    def count_per_save(sender: Any, instance: Topping, **kwargs: Any) -> None:
        Pizza.objects.count()  # once per save, but a save per row: N+1 across its calls

    origin = Origin(kind="command", name="load_toppings", started_ns=perf_counter_ns())
    token = current_origin.set(origin)
    try:
        with (
            connected(post_save, count_per_save, sender=Topping),
            tracing.capture(limit_detail=True) as events,
        ):
            for index in range(6):
                Topping.objects.create(name=f"topping-{index}")
    finally:
        current_origin.reset(token)
    assert len([event for event in events if event.signal is post_save]) == 1  # 5 folded
    origin.duration_ns = perf_counter_ns() - origin.started_ns
    recorder.record(origin)  # as a command's end does
    (found,) = findings("query_repeated")
    assert (found.count, found.receiver) == (6, f"{__name__}.{count_per_save.__qualname__}")
    assert "in one command (load_toppings)" in found.message


def test_an_init_receiver_that_queries_is_found_once(db: None) -> None:
    Topping.objects.bulk_create([Topping(name=f"topping-{index}") for index in range(5)])
    with connected(post_init, count_pizzas_on_init, sender=Topping):
        list(Topping.objects.all())
        list(Topping.objects.all())
    (found,) = findings("query_in_init")
    assert found.signal == "django.db.models.signals.post_init"
    assert found.locations == [line_of(count_pizzas_on_init)]
    assert found.message.startswith(
        "Receiver queries on every model instance: test_findings.count_pizzas_on_init ran 1 "
        "query in a signals.post_init receiver"
    )


def test_an_init_receiver_that_queries_is_found_when_folded(settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "DETAIL_LIMIT": 0}
    Topping.objects.bulk_create([Topping(name=f"topping-{index}") for index in range(3)])
    with (
        connected(post_init, count_pizzas_on_init, sender=Topping),
        tracing.capture(limit_detail=True) as events,
    ):
        list(Topping.objects.all())
    assert [event for event in events if event.signal is post_init] == []  # all folded
    recorder.drain(periodic=True)
    (found,) = findings("query_in_init")
    assert found.receiver == f"{__name__}.count_pizzas_on_init"


def test_a_finished_request_keeps_no_statements_once_judged(n_plus_one: None, client: Any) -> None:
    client.get("/toppings/save/?name=basil")
    assert len(findings("query_repeated")) == 1
    (request,) = [origin for origin in recorder.requests if origin.path == "/toppings/save/"]
    assert request.receiver_queries == {}
    assert request.receiver_query_count == REPEATS  # its figures stay


def test_a_query_findings_detail_says_what_to_do_about_it(
    n_plus_one: None, client: Any, django_user_model: Any
) -> None:
    assert client.get("/toppings/save/?name=basil").status_code == 200
    (found,) = findings("query_repeated")
    client.force_login(django_user_model.objects.create_user("cook", is_staff=True))
    detail = client.get(f"/signals/events/{found.id}/").content.decode()
    assert "N+1" in detail
    assert "disconnect()" not in detail  # another finding's advice
    assert "<dt>Signal</dt>" not in detail  # a receiver's queries across its sends
    assert f"<dt>Defined at</dt><dd>{line_of(look_up_pizzas_each_time)}</dd>" in detail
    assert "<dt>Statement</dt><dd><code>SELECT %s AS &quot;a&quot;" in detail


@pytest.mark.django_db(transaction=True)
def test_transaction_control_is_never_the_repeated_query(client: Any) -> None:
    # SAVEPOINT and RELEASE SAVEPOINT run as often as the INSERT: only the INSERT is a query a
    # receiver could batch.
    with connected(post_save, save_in_savepoints, sender=Topping):
        assert client.get("/toppings/save/?name=basil").status_code == 200
    (found,) = findings("query_repeated")
    assert found.count == REPEATS
    assert found.statement.startswith('INSERT INTO "pizzeria_pizza"')
