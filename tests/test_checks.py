"""System checks for SIGNAL_DASHBOARD and the middleware."""

from __future__ import annotations

import sys
from typing import Any

from django.core.checks import Error, Warning
from django.dispatch import Signal

from signal_dashboard.checks import check_middleware, check_settings

MIDDLEWARE_PATH = "signal_dashboard.middleware.SignalDashboardMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"


def test_valid_settings_pass(settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {"ENABLED": True, "BUFFER_SIZE": 10}
    assert check_settings() == []
    assert check_middleware() == []


def test_not_a_dict(settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = ["ENABLED"]
    assert check_settings() == [
        Error(
            "SIGNAL_DASHBOARD must be a dict.",
            hint="Got list.",
            id="signal_dashboard.E001",
        )
    ]


def test_unknown_key(settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {"BUFER_SIZE": 10}
    [message] = check_settings()
    assert message.id == "signal_dashboard.W001"
    assert message.msg == "SIGNAL_DASHBOARD has unknown keys: BUFER_SIZE."
    assert isinstance(message, Warning)


def test_bad_numbers(settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {"BUFFER_SIZE": 0, "MAX_DEPTH": "3"}
    assert check_settings() == [
        Error(
            "SIGNAL_DASHBOARD['BUFFER_SIZE'] must be a positive integer.",
            hint="Got 0; the default is 2000.",
            id="signal_dashboard.E002",
        ),
        Error(
            "SIGNAL_DASHBOARD['MAX_DEPTH'] must be a positive integer.",
            hint="Got '3'; the default is 3.",
            id="signal_dashboard.E002",
        ),
    ]


def test_sensitive_keys_must_be_strings(settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {"SENSITIVE_KEYS": "iban"}
    assert [m.id for m in check_settings()] == ["signal_dashboard.E003"]


def test_missing_middleware(settings: Any) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE_PATH]
    assert check_middleware() == [
        Warning(
            f"{MIDDLEWARE_PATH} is not in MIDDLEWARE.",
            hint="Without it, signal events are not linked to the request that sent them.",
            id="signal_dashboard.W002",
        )
    ]


def test_middleware_before_authentication(settings: Any) -> None:
    settings.MIDDLEWARE = [MIDDLEWARE_PATH, AUTH]
    assert [m.id for m in check_middleware()] == ["signal_dashboard.W003"]


def test_redis_url_must_be_a_redis_url(settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {"REDIS_URL": "localhost:6379"}
    assert check_settings() == [
        Error(
            "SIGNAL_DASHBOARD['REDIS_URL'] must be a redis:// (or rediss://, unix://) URL.",
            hint="For example 'redis://127.0.0.1:6379/0', or None to keep events in-process.",
            id="signal_dashboard.E004",
        )
    ]
    settings.SIGNAL_DASHBOARD = {"REDIS_URL": "redis://127.0.0.1:6379/0"}
    assert check_settings() == []  # channels_redis is installed with the test extra


def test_sample_rate_is_a_share(settings: Any) -> None:
    for rate in (1.5, -0.1, "0.5", True):
        settings.SIGNAL_DASHBOARD = {"SAMPLE_RATE": rate}
        assert [m.id for m in check_settings()] == ["signal_dashboard.E006"], rate
    settings.SIGNAL_DASHBOARD = {"SAMPLE_RATE": 0}
    assert check_settings() == []


def test_ignore_settings_must_be_lists_of_strings(settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {
        "IGNORE_SIGNALS": "django.db.models.signals.post_init",
        "IGNORE_SENDERS": [None],
    }
    assert check_settings() == [
        Error(
            "SIGNAL_DASHBOARD['IGNORE_SIGNALS'] must be a list of strings.",
            hint='For example ["django.db.models.signals.post_init"].',
            id="signal_dashboard.E003",
        ),
        Error(
            "SIGNAL_DASHBOARD['IGNORE_SENDERS'] must be a list of strings.",
            hint='For example ["pizzeria.Topping"].',
            id="signal_dashboard.E003",
        ),
    ]


def test_ignored_signals_must_name_signals(settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {
        "IGNORE_SIGNALS": [
            "django.db.models.signals.post_init",
            "tests.urls.pizza_ordered",
            "myapp.signals.order_placed",
            "django.db.models.signals.post_iinit",
            "tests.urls.order_pizza",
        ],
        "IGNORE_SENDERS": ["pizzeria.Topping"],
    }
    assert check_settings() == [
        Warning(
            "SIGNAL_DASHBOARD['IGNORE_SIGNALS']: 'myapp.signals.order_placed' does not import.",
            hint="ModuleNotFoundError: No module named 'myapp'",
            id="signal_dashboard.W004",
        ),
        Warning(
            "SIGNAL_DASHBOARD['IGNORE_SIGNALS']: 'django.db.models.signals.post_iinit' does not "
            "import.",
            hint='ImportError: Module "django.db.models.signals" does not define a "post_iinit" '
            "attribute/class",
            id="signal_dashboard.W004",
        ),
        Warning(
            "SIGNAL_DASHBOARD['IGNORE_SIGNALS']: 'tests.urls.order_pizza' names a function, "
            "not a Signal.",
            hint="Give the dotted path of a Signal object, such as "
            "'django.db.models.signals.post_init'.",
            id="signal_dashboard.W004",
        ),
    ]


def test_trace_only_signals_must_name_signals(settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {"TRACE_ONLY_SIGNALS": ["tests.urls.pizza_ordered", "nowhere.x"]}
    assert check_settings() == [
        Warning(
            "SIGNAL_DASHBOARD['TRACE_ONLY_SIGNALS']: 'nowhere.x' does not import.",
            hint="ModuleNotFoundError: No module named 'nowhere'",
            id="signal_dashboard.W004",
        ),
    ]


def test_a_receiver_connected_twice_is_a_warning_naming_dispatch_uid() -> None:
    import importlib.util
    import sys
    from pathlib import Path

    # The same module imported under a second name: a second code object, the same code.
    path = Path(__file__).parent / "doubled_receiver.py"
    spec = importlib.util.spec_from_file_location("tests_doubled_copy", path)
    assert spec is not None
    assert spec.loader is not None
    copy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy)
    from tests import doubled_receiver

    signal: Signal = doubled_receiver.kitchen_opened
    signal.connect(copy.open_windows)  # the copy's function, same code, another lookup key
    try:
        assert signal.send(sender=None) == [  # sent: the registry knows it now
            (doubled_receiver.open_windows, "open"),
            (copy.open_windows, "open"),
        ]
        messages = [m for m in check_settings_and_doubles() if m.id == "signal_dashboard.W005"]
        location = f"{path}:{doubled_receiver.open_windows.__code__.co_firstlineno}"
        assert messages == [
            Warning(
                f"tests.doubled_receiver.open_windows ({location}) is connected 2 times to "
                "tests.doubled_receiver.kitchen_opened for any sender: it runs 2 times per "
                "send.",
                hint="Its module is probably imported under two names, or connect() runs more "
                "than once. Give connect() (or @receiver) a dispatch_uid, such as "
                "dispatch_uid='tests.doubled_receiver.open_windows', so that connecting it "
                "again replaces it.",
                id="signal_dashboard.W005",
            )
        ]
    finally:
        signal.disconnect(copy.open_windows)
        sys.modules.pop("tests_doubled_copy", None)
    assert [m for m in check_settings_and_doubles() if m.id == "signal_dashboard.W005"] == []


def check_settings_and_doubles() -> list[Any]:
    from signal_dashboard.checks import check_doubled_receivers

    return check_doubled_receivers()


def test_the_registry_page_lists_doubled_receivers(admin_client: Any) -> None:
    from tests import doubled_receiver

    signal = doubled_receiver.kitchen_opened

    signal.connect(doubled_receiver.open_windows, sender="morning", dispatch_uid="again")
    try:
        signal.send(sender="morning")
        page = admin_client.get("/signals/registry/").content.decode()
        assert "Receivers connected more than once" in page
        assert 'data-receiver="tests.doubled_receiver.open_windows"' in page
        assert (
            "runs 2 times per send from morning,\n        connected for any sender, morning"
        ) in page
    finally:
        assert signal.disconnect(dispatch_uid="again", sender="morning")
    page = admin_client.get("/signals/registry/").content.decode()
    assert "Receivers connected more than once" not in page


def test_a_receiver_connected_for_several_senders_runs_once_for_each_and_twice_for_a_repeat() -> (
    None
):
    from signal_dashboard.demo.pizzeria.models import Order, Pizza, Topping
    from tests import doubled_receiver

    signal = Signal()
    holder = sys.modules[__name__]
    holder.several_senders = signal  # type: ignore[attr-defined]
    function = doubled_receiver.open_windows
    for sender in (Topping, Pizza, Order):
        signal.connect(function, sender=sender, weak=False)
    location = f"{doubled_receiver.__file__}:{function.__code__.co_firstlineno}"
    label = "tests.doubled_receiver.open_windows"
    try:
        assert signal.send(sender=Order) == [(function, "open")]  # sent: the registry knows it
        # Once for each of three senders: once per send, whichever it is.
        assert [m for m in check_settings_and_doubles() if label in m.msg] == []
        signal.connect(function, sender=Topping, weak=False, dispatch_uid="again")
        assert [m.msg for m in check_settings_and_doubles() if label in m.msg] == [
            f"{label} ({location}) is connected 2 times to {__name__}.several_senders for "
            "pizzeria.Topping: it runs 2 times per send from pizzeria.Topping."
        ]
        assert signal.send(sender=Topping) == [(function, "open"), (function, "open")]
        assert signal.send(sender=Pizza) == [(function, "open")]
        signal.connect(function, sender=Pizza, weak=False, dispatch_uid="and again")
        assert [m.msg for m in check_settings_and_doubles() if label in m.msg] == [
            f"{label} ({location}) is connected 2 times to {__name__}.several_senders for "
            f"{model}: it runs 2 times per send from {model}."
            for model in ("pizzeria.Pizza", "pizzeria.Topping")
        ]
    finally:
        del holder.several_senders
