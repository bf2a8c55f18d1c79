"""Signal hygiene: lost, doubled and run-time receivers, and disconnects that removed nothing."""

from __future__ import annotations

import functools
import gc
import html
import importlib.util
import json
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.db.models.signals import pre_save
from django.dispatch import Signal, receiver
from django.test import Client, override_settings

from signal_dashboard import tracing
from signal_dashboard.backends import backend
from signal_dashboard.capture.context import Origin, current_origin
from signal_dashboard.capture.finding import Finding
from signal_dashboard.capture.hygiene import hygiene
from signal_dashboard.capture.labels import signal_label
from signal_dashboard.record.filters import EventFilter
from signal_dashboard.record.recorder import recorder
from tests import doubled_receiver
from tests.receiving import connected
from tests.urls import on_every_order, pizza_ordered

HERE = Path(__file__)


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    recorder.clear()
    yield
    recorder.clear()


def findings(kind: str) -> list[Finding]:
    return [finding for finding in recorder.findings if finding.kind == kind]


def line_of(text: str) -> int:
    """The line of this file that holds ``text`` (once)."""
    lines = enumerate(HERE.read_text().splitlines(), 1)
    [number] = [n for n, line in lines if text in line and "line_of(" not in line]
    return number


def test_a_collected_receiver_is_lost_with_where_it_was_connected() -> None:
    signal = Signal()

    def on_order(sender: Any, **kwargs: Any) -> None:
        return None

    alive = weakref.ref(on_order)
    signal.connect(on_order)  # where: this line
    del on_order
    gc.collect()
    assert alive() is None  # not kept alive by us
    test = "test_a_collected_receiver_is_lost_with_where_it_was_connected"
    label = f"{__name__}.{test}.<locals>.on_order"
    [lost] = [finding for finding in findings("lost") if finding.receiver == label]
    assert lost.locations == [f"{HERE}:{line_of('signal.connect(on_order)  # where')}"]
    assert lost.message == (
        "Receiver lost: test_a_collected_receiver_is_lost_with_where_it_was_connected.on_order, "
        "garbage-collected while connected "
        f"(at {lost.locations[0]})"
    )
    assert signal.send(sender=None) == []


def test_a_decorated_receiver_is_placed_at_its_decorator_and_a_bound_method_lost_too() -> None:
    signal = Signal()

    @receiver(signal)  # decorated here
    def on_order(sender: Any, **kwargs: Any) -> None:
        return None

    class Kitchen:
        def on_order(self, sender: Any, **kwargs: Any) -> None:
            return None

    # Nothing but the bound method holds this instance: collected as connect() returns, before
    # it could ever run.
    signal.connect(Kitchen().on_order)  # a kitchen nobody keeps
    del on_order
    gc.collect()
    lost = sorted(findings("lost"), key=lambda finding: finding.receiver)
    assert [finding.receiver.rsplit(".", 2)[-2:] for finding in lost] == [
        ["Kitchen", "on_order"],
        ["<locals>", "on_order"],
    ]
    assert lost[0].locations == [f"{HERE}:{line_of('# a kitchen nobody keeps')}"]
    assert lost[1].locations == [f"{HERE}:{line_of('@receiver(signal)  # decorated here')}"]


def test_a_bound_method_that_goes_with_its_instance_is_not_lost() -> None:
    signal = Signal()

    class Storage:
        def __init__(self) -> None:
            signal.connect(self.clear_cache)  # as Django's storages connect setting_changed

        def clear_cache(self, sender: Any, **kwargs: Any) -> None:
            return None

    class Kitchen:
        def on_order(self, sender: Any, **kwargs: Any) -> None:
            return None

    storage = Storage()
    kitchen = Kitchen()
    signal.connect(kitchen.on_order)
    assert len(signal.send(sender=None)) == 2
    alive = [weakref.ref(storage), weakref.ref(kitchen)]
    del storage, kitchen
    gc.collect()
    assert [reference() for reference in alive] == [None, None]  # not kept alive by us
    assert findings("lost") == []


def test_a_receiver_that_goes_with_its_sender_is_not_lost() -> None:
    signal = Signal()

    def make_model() -> type:
        class Temporary:  # as migrate makes model classes of past states
            pass

        def on_temporary(sender: Any, **kwargs: Any) -> None:
            return None

        Temporary.on_temporary = on_temporary  # type: ignore[attr-defined]  # held by its class
        signal.connect(on_temporary, sender=Temporary)
        return Temporary

    temporary = weakref.ref(make_model())
    gc.collect()
    assert temporary() is None
    assert findings("lost") == []

    # Filtered to a sender that lives on, the same receiver is lost once it is let go.
    kept = make_model()
    del kept.on_temporary  # type: ignore[attr-defined]
    gc.collect()
    [lost] = findings("lost")
    assert lost.receiver.endswith("make_model.<locals>.on_temporary")


def test_a_receiver_disconnected_on_purpose_is_not_lost() -> None:
    signal = Signal()

    def on_order(sender: Any, **kwargs: Any) -> None:
        return None

    signal.connect(on_order)
    assert signal.disconnect(on_order) is True
    del on_order
    gc.collect()
    assert findings("lost") == []


def test_the_same_code_connected_under_two_names_is_doubled() -> None:
    path = HERE.parent / "doubled_receiver.py"
    spec = importlib.util.spec_from_file_location("tests_doubled_again", path)
    assert spec is not None
    assert spec.loader is not None
    copy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy)
    signal = doubled_receiver.kitchen_opened
    try:
        signal.connect(copy.open_windows)  # connected again, under another key
        [doubled] = findings("doubled")
        assert doubled.receiver == "tests.doubled_receiver.open_windows"
        assert doubled.locations[1] == f"{HERE}:{line_of('under another key')}"
        # The first connect: where tests/doubled_receiver.py was imported, by its decorator
        # (or, imported before tracing was installed, unknown).
        assert doubled.message.startswith("Receiver doubled")
        signal.connect(copy.open_windows)  # the same key again: Django ignores it, and so do we
        assert len(findings("doubled")) == 1
        signal.connect(copy.open_windows, sender="late")  # another key, senders overlap
        assert len(findings("doubled")) == 2
        signal.disconnect(copy.open_windows, sender="late")
    finally:
        signal.disconnect(copy.open_windows)
        sys.modules.pop("tests_doubled_again", None)


@pytest.mark.django_db
def test_a_connect_while_a_request_runs_is_recorded_with_the_request() -> None:
    client = Client()
    try:
        for _ in range(3):
            assert client.get("/connect/").status_code == 200
    finally:
        pizza_ordered.disconnect(on_every_order)
    # Django connected it once: connecting the same receiver again (its lookup key known)
    # adds nothing, so it is no finding. (Judged as the request is drained, recorded at the
    # next drain.)
    recorder.drain()
    [connected] = findings("connected")
    assert connected.origin["path"] == "/connect/"
    assert connected.receiver == "tests.urls.on_every_order"
    assert connected.locations[0].startswith(f"{HERE.parent / 'urls.py'}:")
    assert hygiene.runtime_connects["tests.urls.pizza_ordered"] >= 1


def test_a_connect_that_adds_nothing_is_no_finding() -> None:
    signal = Signal()
    signal.connect(on_every_order, dispatch_uid="orders")
    bake = Origin(kind="command", name="bake", started_ns=0)
    token = current_origin.set(bake)
    try:
        # As Django's translation module does on every use: the same dispatch_uid again, which
        # Django ignores (it keeps the first receiver), so nothing was connected or doubled.
        signal.connect(on_every_order, dispatch_uid="orders")
        signal.connect(doubled_receiver.open_windows, dispatch_uid="orders")
        signal.connect(on_every_order, dispatch_uid="orders", weak=False)
        assert len(signal.receivers) == 1
        signal.connect(doubled_receiver.open_windows)
    finally:
        current_origin.reset(token)
    try:
        recorder.record(bake)  # the command ends, with the one receiver it added still connected
        recorder.drain()  # (judged as the command is drained, recorded at the next drain)
        assert [finding.kind for finding in recorder.findings] == ["connected"]
    finally:
        signal.disconnect(dispatch_uid="orders")


def test_a_disconnect_that_removed_nothing_says_where() -> None:
    signal = Signal()

    def on_order(sender: Any, **kwargs: Any) -> None:
        return None

    signal.connect(on_order, sender="till", weak=False)
    assert signal.disconnect(on_order) is False  # wrong sender
    assert signal.disconnect(dispatch_uid="nothing") is False
    missed = findings("disconnect_missed")
    assert [finding.receiver for finding in missed] == [
        f"{__name__}.test_a_disconnect_that_removed_nothing_says_where.<locals>.on_order",
        "dispatch_uid='nothing'",
    ]
    assert missed[0].locations == [
        f"{HERE}:{line_of('assert signal.disconnect(on_order) is False')}"
    ]
    assert signal.disconnect(on_order, sender="till") is True
    assert findings("disconnect_missed") == missed


def test_connect_and_disconnect_return_and_raise_as_django_does() -> None:
    def without_kwargs(sender: Any) -> None:
        return None

    def outcome() -> list[Any]:
        signal = Signal()
        results: list[Any] = []
        with override_settings(DEBUG=True):
            try:
                signal.connect(without_kwargs)
            except Exception as error:
                results.append((type(error), str(error)))
        results.append(signal.connect(on_every_order, weak=False))
        results.append(signal.disconnect(on_every_order))
        results.append(signal.disconnect(on_every_order))
        return results

    traced = outcome()
    tracing.uninstall()
    try:
        untraced = outcome()
    finally:
        tracing.install()
    assert traced == untraced
    assert traced[0][0] is ValueError


def test_findings_are_rows_and_records_of_their_own_type() -> None:
    signal = Signal()
    signal.connect(lambda sender, **kwargs: None)  # a lambda, held weakly: gone at once
    gc.collect()
    [lost] = [f for f in findings("lost") if f.receiver.endswith("<lambda>")]
    [row] = [row for row in backend().recent_rows(100) if row["id"] == lost.id]
    assert row["type"] == "lost"
    assert row["ok"] is False
    assert row["error"] == lost.message
    assert EventFilter(errors_only=True).matches(row)
    [record] = [
        record for record in backend().recent_events(100, EventFilter()) if record["id"] == lost.id
    ]
    assert record["type"] == "lost"
    assert record["locations"] == lost.locations
    assert json.loads(json.dumps(record)) == record


@pytest.mark.django_db
def test_the_registry_and_the_detail_show_findings(admin_client: Any) -> None:
    signal = Signal()

    def forgotten(sender: Any, **kwargs: Any) -> None:
        return None

    signal.connect(forgotten)
    del forgotten
    gc.collect()
    assert signal.disconnect(dispatch_uid="never-connected") is False
    # Connected by two requests (each connect a real one, whatever ran before this test).
    for _ in range(2):
        try:
            admin_client.get("/connect/")
        finally:
            pizza_ordered.disconnect(on_every_order)
    page = admin_client.get("/signals/registry/").content.decode()
    label = f"{__name__}.test_the_registry_and_the_detail_show_findings.<locals>.forgotten"
    assert "<h2>Lost receivers</h2>" in page
    assert f'data-receiver="{html.escape(label)}"' in page
    assert "<h2>Disconnects that removed nothing</h2>" in page
    assert "dispatch_uid=&#x27;never-connected&#x27;" in page
    assert "tests.urls.pizza_ordered</strong>: " in page
    assert "and the count keeps growing" in page
    [lost] = [finding for finding in findings("lost") if finding.receiver == label]
    detail = admin_client.get(f"/signals/events/{lost.id}/").content.decode()
    assert "show_findings.forgotten, garbage-collected while connected" in detail
    assert lost.locations[0] in detail
    assert "weak=False" in detail


def test_the_patched_methods_carry_the_originals_names() -> None:
    assert tracing.is_installed()
    for name in ("connect", "disconnect", "send", "send_robust", "asend", "asend_robust"):
        patched = Signal.__dict__[name]
        original = patched.__wrapped__
        assert patched is not original
        for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
            assert getattr(patched, attribute) == getattr(original, attribute), (name, attribute)


def test_a_lazy_model_signal_reference_is_checked_as_without_tracing() -> None:
    from django.apps.registry import Apps
    from django.core.checks.model_checks import _check_lazy_references
    from django.db.models.signals import post_init

    def on_init(sender: Any, **kwargs: Any) -> None:
        return None

    def messages() -> list[str]:
        apps = Apps()
        post_init.connect(on_init, sender="missing_app.Model", apps=apps)
        return [error.msg for error in _check_lazy_references(apps)]

    traced = messages()
    tracing.uninstall()
    try:
        untraced = messages()
    finally:
        tracing.install()
    assert traced == untraced
    assert traced == [
        "The function 'on_init' was connected to the 'post_init' signal with a lazy reference "
        "to the sender 'missing_app.model', but app 'missing_app' isn't installed."
    ]


def on_topping_saved(sender: Any, **kwargs: Any) -> None:
    return None


def test_a_model_signal_is_placed_at_the_projects_connect_not_inside_django() -> None:
    from django.apps.registry import Apps
    from django.db import models
    from django.db.models.signals import post_save

    from signal_dashboard.demo.pizzeria.models import Topping

    post_save.connect(on_topping_saved, sender=Topping)  # connected for toppings
    post_save.connect(on_topping_saved, sender=Topping, dispatch_uid="again")  # and again
    try:
        [doubled] = findings("doubled")
        assert doubled.locations == [
            f"{HERE}:{line_of('# connected for toppings')}",
            f"{HERE}:{line_of('# and again')}",
        ]
        # A lazy sender ("app_label.Model") is connected by Django once the model is
        # registered: the receiver's own line stands for the connect() nobody can see then.
        apps = Apps()

        def on_later(sender: Any, **kwargs: Any) -> None:  # the lazy receiver
            return None

        post_save.connect(on_later, sender="kitchen.Oven", apps=apps, weak=False)
        recorder.clear()

        class Oven(models.Model):  # noqa: DJ008
            class Meta:
                app_label = "kitchen"
                apps = Apps()

        apps.register_model("kitchen", Oven)
        post_save.connect(on_later, sender=Oven, dispatch_uid="oven twice", weak=False)
        [doubled] = findings("doubled")
        assert doubled.locations[0] == f"{HERE}:{line_of('# the lazy receiver')}"
        post_save.disconnect(on_later, sender=Oven)
        post_save.disconnect(on_later, sender=Oven, dispatch_uid="oven twice")
    finally:
        post_save.disconnect(on_topping_saved, sender=Topping)
        post_save.disconnect(on_topping_saved, sender=Topping, dispatch_uid="again")


def test_findings_about_installed_code_are_left_out_unless_asked_for() -> None:
    from django.core.files.storage import FileSystemStorage

    def collectstatic() -> None:
        """A command that makes a storage: Django's storage connects setting_changed as it is
        made, and leaves it connected, which is a finding about Django's code, not the
        project's."""
        command = Origin(kind="command", name="collectstatic", started_ns=0)
        token = current_origin.set(command)
        try:
            FileSystemStorage()
        finally:
            current_origin.reset(token)
        recorder.record(command)  # the command ends
        recorder.drain()

    seen: list[Finding] = []
    unwatch = hygiene.watch(seen.append)
    try:
        collectstatic()
        with override_settings(SIGNAL_DASHBOARD={"HYGIENE_INCLUDE_INSTALLED": True}):
            recorder.clear()
            collectstatic()
            assert [finding.kind for finding in recorder.findings] == ["connected"]
            recorder.clear()
        collectstatic()
    finally:
        unwatch()
    assert list(recorder.findings) == []
    assert [finding.kind for finding in seen] == ["connected"] * 3  # watchers see all
    assert not any(finding.own for finding in seen)
    assert seen[0].locations[0].startswith(str(Path(django.__file__).parent))


def test_a_callable_receivers_class_is_not_kept_alive() -> None:
    signal = Signal()

    def make() -> Any:
        class Handler:
            def __call__(self, sender: Any, **kwargs: Any) -> str:
                return "handled"

        return Handler()

    handler = make()
    kind = weakref.ref(type(handler))
    signal.connect(handler)
    assert signal.send(sender=None) == [(handler, "handled")]
    [event] = [e for e in recorder.events if e.signal is signal]
    assert [call.label for call in event.receivers] == [
        f"{__name__}.{make.__qualname__}.<locals>.Handler"
    ]
    assert signal.disconnect(handler) is True
    del handler, event
    recorder.clear()
    gc.collect()
    assert kind() is None


def test_a_partial_is_named_by_what_it_wraps() -> None:
    signal = Signal()
    signal.connect(functools.partial(on_topping_saved, extra=1), weak=False)
    signal.send(sender=None)
    [event] = [e for e in recorder.events if e.signal is signal]
    assert [call.label for call in event.receivers] == [f"{__name__}.on_topping_saved"]


class Handler:
    def __call__(self, sender: Any, **kwargs: Any) -> str:
        return "handled"


class TestWhatAMethodLetsGoIsGone:
    """Django's dispatch tests connect from test methods (``self`` first): finding where a
    connect() came from must not keep the caller's locals alive."""

    def test_a_weak_receiver_let_go_is_gone(self) -> None:
        signal = Signal()
        handler = Handler()
        signal.connect(handler)
        assert signal.send(sender=None) == [(handler, "handled")]
        del handler
        gc.collect()
        assert signal.send(sender=None) == []


def test_a_receiver_that_ran_before_it_was_let_go_is_not_lost() -> None:
    signal = Signal()

    def connect_and_send(send: bool) -> None:
        def handler(sender: Any, **kwargs: Any) -> None:  # as tests connect one
            return None

        signal.connect(handler)
        if send:
            signal.send(sender=None)

    connect_and_send(send=True)  # it ran, then went at the end of its scope
    gc.collect()
    assert findings("lost") == []
    other = Signal()
    other.connect(lambda sender, **kwargs: None)  # never ran: lost
    gc.collect()
    assert [finding.signal for finding in findings("lost")] == [signal_label(other)]


def test_receivers_behind_one_decorator_are_each_their_own_and_never_doubled() -> None:
    from tests import decorated_receivers as kitchen

    signal = kitchen.pizza_baked
    with (
        connected(signal, kitchen.box_it),
        connected(signal, kitchen.slice_it),
        connected(signal, kitchen.serve_it),
        connected(signal, kitchen.plate_it),
        tracing.capture() as events,
    ):
        signal.send(sender=None)
    assert findings("doubled") == []
    [event] = events
    assert [(call.label, call.result) for call in event.receivers] == [
        ("tests.decorated_receivers.box_it", "boxed"),
        ("tests.decorated_receivers.slice_it", "sliced"),
        ("tests.decorated_receivers.serve_it", "served"),
        ("tests.decorated_receivers.plate_it", "plated"),
    ]
    assert [call.location.rpartition(":")[2] for call in event.receivers] == [
        str(kitchen.box_it.__wrapped__.__code__.co_firstlineno),
        str(kitchen.slice_it.__wrapped__.__code__.co_firstlineno),
        str(kitchen.serve_it.__closure__[0].cell_contents.__code__.co_firstlineno),
        str(kitchen.plate_it.__closure__[0].cell_contents.__code__.co_firstlineno),
    ]
    recorder.drain()
    labels = {recorder.latency.receiver_name(key)[0] for _, _, key in recorder.latency.calls}
    assert {
        "tests.decorated_receivers.box_it",
        "tests.decorated_receivers.slice_it",
        "tests.decorated_receivers.serve_it",
        "tests.decorated_receivers.plate_it",
    } <= labels


def test_a_receiver_connected_and_disconnected_within_each_request_is_no_finding(
    admin_client: Client,
) -> None:
    before = hygiene.runtime_connects["django.db.models.signals.pre_save"]
    receivers = len(pre_save.receivers)
    for _ in range(3):
        assert admin_client.get("/connect-for-the-request/").status_code == 200
    recorder.drain()
    recorder.drain()  # (judged as each request is drained, recorded at the next drain)
    assert findings("connected") == []
    assert len(pre_save.receivers) == receivers
    assert hygiene.runtime_connects["django.db.models.signals.pre_save"] == before
    page = admin_client.get("/signals/registry/").content.decode()
    runtime = page.partition('<section class="sd-runtime-connects">')[2].partition("</section>")
    assert "pre_save" not in runtime[0]


def test_a_receiver_disconnected_and_connected_again_within_one_test_is_no_finding() -> None:
    # As a test's setUp() unregisters a model's receivers and its tearDown() registers them
    # again: the signal has the same receivers before and after.
    signal = Signal()
    signal.connect(doubled_receiver.open_windows, dispatch_uid="registered")
    test = Origin(kind="test", name="tests.UnregisterTest.test_unregister_create", started_ns=0)
    token = current_origin.set(test)
    try:
        assert signal.disconnect(dispatch_uid="registered")
        signal.connect(doubled_receiver.open_windows, dispatch_uid="registered")
    finally:
        current_origin.reset(token)
    recorder.record(test)  # the test ends
    recorder.drain()
    try:
        assert findings("connected") == []
    finally:
        signal.disconnect(dispatch_uid="registered")
