"""The dashboard's pages: the latency table and request list, a receiver's calls, a request's
waterfall, and the commands that count as origins."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.dispatch import Signal
from django.urls import reverse

from signal_dashboard.demo.pizzeria.models import Topping
from signal_dashboard.record.recorder import recorder
from signal_dashboard.tracing import capture
from signal_dashboard.web.waterfall import build
from tests.urls import pizza_ordered

pytestmark = pytest.mark.django_db


def make_topping(sender: Any, name: str, **kwargs: Any) -> None:
    """Saves a topping: its pre_save and post_save are sends nested in this receiver."""
    time.sleep(0.02)
    Topping.objects.create(name=name)


def announce(sender: Any, **kwargs: Any) -> None:
    time.sleep(0.001)


def topping_saved(sender: Any, **kwargs: Any) -> None:
    pass


@pytest.fixture(autouse=True)
def receivers() -> Iterator[None]:
    from django.db.models.signals import post_save

    recorder.clear()
    pizza_ordered.connect(make_topping)
    pizza_ordered.connect(announce)
    post_save.connect(topping_saved, sender=Topping)
    yield
    pizza_ordered.disconnect(make_topping)
    pizza_ordered.disconnect(announce)
    post_save.disconnect(topping_saved, sender=Topping)


@pytest.fixture
def staff_client(client: Any, django_user_model: Any) -> Any:
    client.force_login(django_user_model.objects.create_user("chef", is_staff=True))
    recorder.clear()  # the login's own signals
    return client


def test_dashboard_shows_latency_table_and_requests(staff_client: Any) -> None:
    staff_client.get("/order/?name=basil")
    html = staff_client.get("/signals/").content.decode()
    latency = html[html.index('id="sd-latency"') : html.index("</table>", html.index("sd-latency"))]
    names = re.findall(r'class="sd-lat-row[^"]*" data-name="([^"]+)"', latency)
    assert "tests.test_views.make_topping" in names
    assert "tests.test_views.topping_saved" in names
    # Sorted by p95, slowest first: make_topping includes its nested save and a 20 ms sleep,
    # announce 1 ms: a gap wide enough for the scheduling delays of a loaded machine.
    assert names[0] == "tests.test_views.make_topping"
    assert '<svg class="sd-spark"' in latency
    requests = html[html.index('id="sd-request-rows"') :]
    assert "GET /order/" in requests


def test_latency_table_honours_the_page_filter(staff_client: Any) -> None:
    staff_client.get("/order/?name=basil")
    html = staff_client.get("/signals/?signal=post_save").content.decode()
    names = set(re.findall(r'class="sd-lat-row[^"]*" data-name="([^"]+)"', html))
    assert "tests.test_views.topping_saved" in names
    assert "tests.test_views.make_topping" not in names


def test_receiver_detail_lists_recent_and_slowest_calls(staff_client: Any) -> None:
    for name in ("basil", "oregano", "rocket"):
        staff_client.get(f"/order/?name={name}")
    response = staff_client.get("/signals/receivers/", {"label": "tests.test_views.announce"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "3 calls since start" in html
    slowest = html[html.index("Slowest calls") : html.index("Recent calls")]
    assert slowest.count("GET /order/") == 3
    recent = html[html.index("Recent calls") :]
    assert recent.count("<tr") == 4  # the header and three calls


def test_receiver_detail_needs_a_known_label(staff_client: Any) -> None:
    assert staff_client.get("/signals/receivers/").status_code == 400
    missing = staff_client.get("/signals/receivers/", {"label": "nowhere.nothing"})
    assert missing.status_code == 404


def test_request_waterfall_nests_sends_under_their_receiver(staff_client: Any) -> None:
    staff_client.get("/order/?name=basil")
    [origin] = [o for o in recorder.requests if o.path == "/order/"]
    waterfall = build(origin, list(recorder.events))
    lines = [(bar.kind, bar.label.rpartition(".")[2], bar.depth) for bar in waterfall.bars]
    sends = [line for line in lines if line[0] == "send" and line[2] == 0]
    assert sends == [
        ("send", "request_started", 0),
        ("send", "pizza_ordered", 0),
        ("send", "request_finished", 0),
    ]
    first = lines.index(("send", "pizza_ordered", 0))
    assert lines[first : lines.index(("send", "request_finished", 0))] == [
        ("send", "pizza_ordered", 0),
        ("receiver", "make_topping", 1),
        # pre_save has no receiver for toppings: not recorded.
        ("send", "post_save", 2),
        ("receiver", "topping_saved", 3),
        ("receiver", "announce", 1),
    ]
    make, post_save = waterfall.bars[first + 1], waterfall.bars[first + 2]
    # Self time leaves out the nested send, which ran inside the receiver.
    assert make.self_ns == make.duration_ns - post_save.duration_ns
    assert make.self_ns >= 20_000_000
    for bar in waterfall.bars:
        assert 0 <= bar.offset_percent <= 100
        assert 0 < bar.width_percent <= 100 - bar.offset_percent + 1e-9
    assert waterfall.bars[0].start_ns >= 0
    assert waterfall.missing == 0

    response = staff_client.get(f"/signals/requests/{origin.id}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="sd-bar-row') == len(waterfall.bars)
    assert "GET /order/" in html


def test_a_request_gone_from_the_buffer_is_410_saying_so(staff_client: Any) -> None:
    # 410, not 404: the page shows the words (django-htmx's DEBUG page takes over a 404).
    gone = staff_client.get("/signals/requests/999999999/")
    assert (gone.status_code, gone.content) == (410, b"That request is no longer in the buffer.")
    gone = staff_client.get("/signals/events/nowhere:1:2/")
    assert (gone.status_code, gone.content) == (410, b"That send is no longer in the buffer.")
    assert staff_client.get("/signals/requests/not-a-request/").status_code == 404


def test_pages_need_staff(client: Any, django_user_model: Any) -> None:
    for path in ("/signals/receivers/?label=x", "/signals/requests/1/", "/signals/registry/"):
        assert client.get(path).status_code == 302
    client.force_login(django_user_model.objects.create_user("guest"))
    for path in ("/signals/receivers/?label=x", "/signals/requests/1/", "/signals/registry/"):
        assert client.get(path).status_code == 403


def test_a_management_command_is_an_origin_with_its_sends(staff_client: Any) -> None:
    call_command("check", verbosity=0)
    commands = [origin for origin in recorder.requests if origin.kind == "command"]
    assert [origin.name for origin in commands] == ["check"]
    assert (commands[0].duration_ns or 0) > 0
    html = staff_client.get("/signals/").content.decode()
    assert 'data-kind="command"' in html


def loaded(sender: Any, **kwargs: Any) -> None:
    pass


def test_a_storm_is_flagged_on_the_request(staff_client: Any, settings: Any) -> None:
    from django.db.models.signals import post_init

    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "STORM_THRESHOLD": 2}
    for name in ("a", "b", "c"):
        Topping.objects.create(name=name)
    post_init.connect(loaded, sender=Topping)
    try:
        recorder.clear()
        staff_client.get("/toppings/")  # post_init once per topping loaded
        staff_client.get("/order/")  # one post_init: no storm
    finally:
        post_init.disconnect(loaded, sender=Topping)
    storms = {origin.path: origin.storms for origin in recorder.requests}
    assert storms == {"/toppings/": [("tests.test_views.loaded", 3)], "/order/": []}
    html = staff_client.get("/signals/").content.decode()
    assert html.count("sd-req-row sd-storm") == 1
    assert re.search(r'sd-lat-row[^"]*sd-storm[^"]*" data-name="tests.test_views.loaded"', html)


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of user data")


def test_a_failing_command_is_an_origin_with_its_error(staff_client: Any) -> None:
    from django.core.management.base import BaseCommand

    class Failing(BaseCommand):
        def handle(self, *args: Any, **options: Any) -> None:
            raise _Unprintable

    with pytest.raises(_Unprintable):
        Failing().execute(verbosity=0, no_color=True, force_color=False, skip_checks=True)
    [origin] = [o for o in recorder.requests if o.kind == "command"]
    assert origin.error == "_Unprintable: "


def test_staff_stop_and_start_recording_and_everyone_is_told(client: Any) -> None:
    from django.contrib.auth import get_user_model

    from signal_dashboard.backends import backend
    from signal_dashboard.capture import send

    staff = get_user_model().objects.create_user("chef", password="pw", is_staff=True)
    client.force_login(staff)
    url = reverse("signal_dashboard:recording")
    assert client.get(url).status_code == 405
    assert client.post(url, {"on": "maybe"}).status_code == 400
    try:
        stopped = client.post(url, {"on": "false"})
        assert stopped.status_code == 200
        assert 'data-on="false"' in stopped.content.decode()
        assert "recording stopped</strong> by chef at" in stopped.content.decode()
        assert not send.is_recording()
        baked = Signal()
        baked.connect(on_baked)
        with capture() as events:
            assert baked.send(sender="oven") == [(on_baked, "baked")]
        assert list(events) == []  # nothing is traced while stopped
        page = client.get(reverse("signal_dashboard:index")).content.decode()
        assert "recording stopped</strong> by chef" in page
        assert 'value="true"' in page  # the button would start it again
        assert backend().recording().by == "chef"
        started = client.post(url, {"on": "true"})
        assert 'data-on="true"' in started.content.decode()
        with capture() as events:
            baked.send(sender="oven")
        assert [event.sender_label for event in events] == ["oven"]
    finally:
        backend().set_recording(True, "")


def test_only_staff_may_switch_recording(client: Any, settings: Any) -> None:
    from django.contrib.auth import get_user_model

    from signal_dashboard.capture import send

    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "ACCESS": "tests.test_views.anyone"}
    user = get_user_model().objects.create_user("guest", password="pw")
    client.force_login(user)
    response = client.post(reverse("signal_dashboard:recording"), {"on": "false"})
    assert response.status_code == 403
    assert send.is_recording()


def anyone(user: Any) -> bool:
    return True


def on_baked(sender: Any, **kwargs: Any) -> str:
    return "baked"
