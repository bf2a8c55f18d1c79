"""Every signal from the user's material, fired the way Django fires it, traced for real."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth import signals as auth_signals
from django.core import signals as core_signals
from django.core.management import call_command
from django.db import connection, connections, models
from django.db.backends import signals as backend_signals
from django.db.models import signals as model_signals
from django.dispatch import Signal
from django.template import Context, Template
from django.test import signals as test_signals
from django.test.utils import CaptureQueriesContext, isolate_apps, override_settings

from signal_dashboard import tracing
from signal_dashboard.demo.pizzeria.models import Order, Pizza, Topping
from signal_dashboard.demo.pizzeria.signals import pizza_done
from signal_dashboard.tracing import CapturedEvents, capture

SECRET = "correct-horse-battery-staple"


def listener(sender: Any, **kwargs: Any) -> str:
    return "heard"


@pytest.fixture
def listen() -> Iterator[Callable[[Signal], None]]:
    """Connect ``listener`` to signals for the test, so every send has a receiver we know."""
    connected: list[Signal] = []

    def connect(signal: Signal) -> None:
        signal.connect(listener, dispatch_uid="tests.listener")
        connected.append(signal)

    yield connect
    for signal in connected:
        signal.disconnect(dispatch_uid="tests.listener")


def only(events: CapturedEvents, signal: Signal, sender: Any = None) -> Any:
    matching = events.filter(signal=signal, sender=sender)
    assert len(matching) == 1, matching
    return matching[0]


def assert_listener_ran(event: Any) -> None:
    labels = [call.label for call in event.receivers]
    assert "tests.test_signals.listener" in labels
    [call] = [c for c in event.receivers if c.label == "tests.test_signals.listener"]
    assert call.result == "heard"
    assert call.location.endswith(f"test_signals.py:{listener.__code__.co_firstlineno}")


@pytest.mark.django_db
def test_pre_and_post_save(listen: Callable[[Signal], None]) -> None:
    listen(model_signals.pre_save)
    listen(model_signals.post_save)
    with capture() as events:
        Topping.objects.create(name="basil")
    pre = only(events, model_signals.pre_save, Topping)
    post = only(events, model_signals.post_save, Topping)
    assert pre.signal_label == "django.db.models.signals.pre_save"
    assert post.signal_label == "django.db.models.signals.post_save"
    assert post.sender_label == "pizzeria.Topping"
    assert post.payload["created"] is True
    assert post.payload["instance"]["model"] == "pizzeria.Topping"
    assert_listener_ran(post)


@pytest.mark.django_db
def test_pre_and_post_delete(listen: Callable[[Signal], None]) -> None:
    topping = Topping.objects.create(name="ham")
    listen(model_signals.pre_delete)
    listen(model_signals.post_delete)
    with capture() as events:
        topping.delete()
    pre = only(events, model_signals.pre_delete, Topping)
    assert pre.signal_label == "django.db.models.signals.pre_delete"
    assert pre.payload["instance"] == {"model": "pizzeria.Topping", "pk": topping_pk(pre)}
    assert_listener_ran(only(events, model_signals.post_delete, Topping))


def topping_pk(event: Any) -> Any:
    return event.payload["instance"]["pk"]


@pytest.mark.django_db
def test_m2m_changed(listen: Callable[[Signal], None]) -> None:
    pizza = Pizza.objects.create(name="diavola", price="9.50")
    topping = Topping.objects.create(name="salami")
    listen(model_signals.m2m_changed)
    with capture() as events:
        pizza.toppings.add(topping)
    sends = events.filter(signal=model_signals.m2m_changed, sender=Pizza.toppings.through)
    assert [event.payload["action"] for event in sends] == ["pre_add", "post_add"]
    assert sends[0].sender_label == "pizzeria.Pizza_toppings"
    assert sends[1].payload["pk_set"] == [topping.pk]
    assert_listener_ran(sends[1])


def test_pre_and_post_init(listen: Callable[[Signal], None]) -> None:
    listen(model_signals.pre_init)
    listen(model_signals.post_init)
    with capture() as events:
        Topping(name="olive")
    pre = only(events, model_signals.pre_init, Topping)
    assert pre.signal_label == "django.db.models.signals.pre_init"
    assert pre.sender_label == "pizzeria.Topping"
    assert_listener_ran(pre)
    post = only(events, model_signals.post_init, Topping)
    assert post.payload["instance"] == {"model": "pizzeria.Topping", "pk": None}
    assert_listener_ran(post)


@isolate_apps("signal_dashboard.demo.pizzeria")
def test_class_prepared(listen: Callable[[Signal], None]) -> None:
    listen(model_signals.class_prepared)
    with capture() as events:

        class Oven(models.Model):  # noqa: DJ008  (a throwaway model)
            class Meta:
                app_label = "pizzeria"

    event = only(events, model_signals.class_prepared, Oven)
    assert event.signal_label == "django.db.models.signals.class_prepared"
    assert event.sender_label == "pizzeria.Oven"
    assert_listener_ran(event)


@pytest.mark.django_db
def test_request_started_and_finished(client: Any, listen: Callable[[Signal], None]) -> None:
    listen(core_signals.request_started)
    listen(core_signals.request_finished)
    with capture() as events:
        client.get("/toppings/save/", HTTP_COOKIE=f"sessionid={SECRET}")
    started = only(events, core_signals.request_started)
    assert started.signal_label == "django.core.signals.request_started"
    assert started.sender_label == "django.test.client.ClientHandler"
    assert started.payload["environ"]["PATH_INFO"] == "/toppings/save/"
    assert SECRET not in json.dumps(started.as_dict())
    finished = only(events, core_signals.request_finished)
    assert finished.signal_label == "django.core.signals.request_finished"
    assert finished.sender_label == "None"  # the test client's responses have no handler class
    assert_listener_ran(finished)


@pytest.mark.django_db
def test_got_request_exception(client: Any, listen: Callable[[Signal], None]) -> None:
    listen(core_signals.got_request_exception)
    client.raise_request_exception = False
    with capture() as events:
        response = client.get("/broken/")
    assert response.status_code == 500
    event = only(events, core_signals.got_request_exception)
    assert event.signal_label == "django.core.signals.got_request_exception"
    assert event.sender_label == "None"
    assert event.payload["request"] == {"method": "GET", "path": "/broken/"}
    assert event.origin.kind == "request"
    assert_listener_ran(event)


@pytest.mark.django_db
def test_user_logged_in_and_out(client: Any, listen: Callable[[Signal], None]) -> None:
    get_user_model().objects.create_user("chef", password=SECRET)
    listen(auth_signals.user_logged_in)
    listen(auth_signals.user_logged_out)
    with capture() as events:
        assert client.login(username="chef", password=SECRET)
        client.logout()
    logged_in = only(events, auth_signals.user_logged_in)
    assert logged_in.signal_label == "django.contrib.auth.signals.user_logged_in"
    assert logged_in.sender_label == "auth.User"
    assert logged_in.payload["user"]["model"] == "auth.User"
    assert_listener_ran(logged_in)
    logged_out = only(events, auth_signals.user_logged_out)
    assert logged_out.signal_label == "django.contrib.auth.signals.user_logged_out"
    assert logged_out.sender_label == "auth.User"
    assert_listener_ran(logged_out)
    assert SECRET not in json.dumps([event.as_dict() for event in events])


@pytest.mark.django_db
def test_user_login_failed_never_shows_the_password(listen: Callable[[Signal], None]) -> None:
    listen(auth_signals.user_login_failed)
    with capture() as events:
        assert authenticate(request=None, username="chef", password=SECRET) is None
    event = only(events, auth_signals.user_login_failed)
    assert event.signal_label == "django.contrib.auth.signals.user_login_failed"
    assert event.sender_label == "django.contrib.auth"
    assert event.payload["credentials"]["username"] == "chef"
    assert SECRET not in json.dumps(event.as_dict())
    assert_listener_ran(event)


@pytest.mark.django_db(transaction=True)
def test_pre_and_post_migrate_name_the_command(listen: Callable[[Signal], None]) -> None:
    listen(model_signals.pre_migrate)
    listen(model_signals.post_migrate)
    with capture() as events:
        call_command("migrate", verbosity=0)
    pre = events.filter(signal=model_signals.pre_migrate)
    post = events.filter(signal=model_signals.post_migrate)
    assert pre
    assert post
    assert pre[0].signal_label == "django.db.models.signals.pre_migrate"
    assert post[0].signal_label == "django.db.models.signals.post_migrate"
    assert {event.sender_label for event in post} >= {
        "<django.contrib.auth.apps.AuthConfig instance>",
        "<signal_dashboard.demo.pizzeria.apps.PizzeriaConfig instance>",
    }
    for event in pre + post:
        assert event.origin.kind == "command"
        assert event.origin.name == "migrate"
    assert_listener_ran(post[0])


def test_setting_changed_never_shows_the_value(listen: Callable[[Signal], None]) -> None:
    listen(test_signals.setting_changed)
    with capture() as events, override_settings(PIZZA_API_TOKEN=SECRET):
        pass
    sends = events.filter(signal=test_signals.setting_changed)
    assert [event.payload["enter"] for event in sends] == [True, False]
    assert sends[0].payload["setting"] == "PIZZA_API_TOKEN"
    assert sends[0].signal_label == "django.core.signals.setting_changed"
    assert sends[0].sender_label == "django.conf.UserSettingsHolder"
    assert SECRET not in json.dumps([event.as_dict() for event in sends])
    assert_listener_ran(sends[0])


@pytest.mark.django_db
def test_template_rendered_with_a_lazy_queryset_causes_no_query(
    listen: Callable[[Signal], None], django_assert_num_queries: Any
) -> None:
    listen(test_signals.template_rendered)
    template = Template("{{ greeting }}")
    with capture() as events, django_assert_num_queries(0):
        template.render(Context({"greeting": "ciao", "toppings": Topping.objects.all()}))
    event = only(events, test_signals.template_rendered)
    assert event.signal_label == "django.test.signals.template_rendered"
    assert event.sender_label == "<django.template.base.Template instance>"
    assert event.payload["context"] == {"variables": ["greeting", "toppings"]}
    assert_listener_ran(event)


@pytest.mark.django_db
def test_connection_created_never_shows_the_settings(listen: Callable[[Signal], None]) -> None:
    listen(backend_signals.connection_created)
    connection = connections.create_connection("default")
    try:
        with capture() as events:
            connection.ensure_connection()
    finally:
        connection.close()
    event = only(events, backend_signals.connection_created)
    assert event.signal_label == "django.db.backends.signals.connection_created"
    assert event.sender_label == "django.db.backends.sqlite3.base.DatabaseWrapper"
    assert event.payload["connection"] == {"alias": "default", "vendor": "sqlite"}
    assert "NAME" not in json.dumps(event.as_dict())
    assert_listener_ran(event)


@pytest.mark.django_db
def test_custom_signal_with_send_robust_and_a_failing_receiver() -> None:
    with capture() as events:
        responses = pizza_done.send_robust(sender=Pizza, toppings=["ham", "olive"], size="large")
    event = only(events, pizza_done, Pizza)
    assert event.signal_label == "signal_dashboard.demo.pizzeria.signals.pizza_done"
    assert event.sender_label == "pizzeria.Pizza"
    assert event.method == "send_robust"
    assert event.payload == {"toppings": ["ham", "olive"], "size": "large"}
    [error] = event.errors
    assert error.type == "builtins.RuntimeError"
    assert error.message == "oven on fire"
    failing = [r for r in responses if isinstance(r[1], Exception)]
    assert len(failing) == 1
    assert {call.is_async for call in event.receivers} == {True, False}


def test_receiver_connected_twice_with_dispatch_uid_runs_once() -> None:
    signal = Signal()
    signal.connect(listener, dispatch_uid="once")
    signal.connect(listener, dispatch_uid="once")
    with capture() as events:
        assert signal.send(sender=Order) == [(listener, "heard")]
    [event] = events
    assert len(event.receivers) == 1
    assert_listener_ran(event)


def test_weak_receiver_that_was_collected() -> None:
    signal = Signal()

    def short_lived(sender: Any, **kwargs: Any) -> None:
        return None

    signal.connect(short_lived)
    signal.connect(listener)
    del short_lived
    gc.collect()
    with capture() as events:
        signal.send(sender=Order)
    [event] = events
    assert [call.label for call in event.receivers] == ["tests.test_signals.listener"]


@pytest.mark.parametrize("method", ["send", "asend"])
def test_async_receivers_under_send_and_asend(method: str) -> None:
    signal = Signal()

    async def async_listener(sender: Any, **kwargs: Any) -> str:
        return "async heard"

    signal.connect(async_listener)
    signal.connect(listener)
    with capture() as events:
        send = getattr(signal, method)
        result = async_to_sync(send)(sender=Order) if method == "asend" else send(sender=Order)
    assert result == [(listener, "heard"), (async_listener, "async heard")]
    [event] = events
    # Under Django 5.2's asend() both kinds start concurrently, so compare without order.
    assert sorted((call.label.rsplit(".", 1)[1], call.is_async) for call in event.receivers) == [
        ("async_listener", True),
        ("listener", False),
    ]


@pytest.mark.django_db
def test_no_query_for_deferred_instances_and_queryset_origins(
    listen: Callable[[Signal], None], django_assert_num_queries: Any
) -> None:
    Topping.objects.create(name="basil")
    listen(model_signals.post_init)
    listen(model_signals.pre_delete)
    with capture() as events, django_assert_num_queries(1):
        [topping] = Topping.objects.only("id")
    assert only(events, model_signals.post_init, Topping).payload["instance"]["pk"] == topping.pk
    Topping.objects.create(name="oregano")
    with CaptureQueriesContext(connection) as untraced:
        tracing.uninstall()
        try:
            Topping.objects.filter(name="oregano").delete()
        finally:
            tracing.install()
    with capture() as events, CaptureQueriesContext(connection) as traced:
        Topping.objects.filter(name="basil").delete()
    assert len(traced) == len(untraced)
    event = only(events, model_signals.pre_delete, Topping)
    assert event.payload["origin"] == {"queryset": "pizzeria.Topping"}
