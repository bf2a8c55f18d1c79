"""Signal hygiene: lost, doubled and run-time receivers, and disconnects that removed nothing."""

from __future__ import annotations

import gc
import html
import importlib.util
import json
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.dispatch import Signal, receiver
from django.test import Client, override_settings

from signal_dashboard import tracing
from signal_dashboard.backends import backend
from signal_dashboard.filters import EventFilter
from signal_dashboard.hygiene import Finding, hygiene
from signal_dashboard.recorder import recorder
from tests import doubled_receiver
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

    kitchen = Kitchen()
    signal.connect(kitchen.on_order)
    del on_order, kitchen
    gc.collect()
    lost = sorted(findings("lost"), key=lambda finding: finding.receiver)
    assert [finding.receiver.rsplit(".", 2)[-2:] for finding in lost] == [
        ["Kitchen", "on_order"],
        ["<locals>", "on_order"],
    ]
    assert lost[1].locations == [f"{HERE}:{line_of('@receiver(signal)  # decorated here')}"]


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
    connected = findings("connected")
    assert len(connected) == 3
    assert {finding.origin["path"] for finding in connected} == {"/connect/"}
    assert connected[0].receiver == "tests.urls.on_every_order"
    assert connected[0].locations[0].startswith(f"{HERE.parent / 'urls.py'}:")
    assert hygiene.runtime_connects["tests.urls.pizza_ordered"] >= 3


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
    try:
        for _ in range(2):
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
