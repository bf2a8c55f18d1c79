"""System checks for the SIGNAL_DASHBOARD setting and the middleware."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from .capture.labels import NotASignal, signal_at
from .conf import DEFAULTS, SETTING_NAME

MIDDLEWARE_PATH = "signal_dashboard.middleware.SignalDashboardMiddleware"
AUTH_MIDDLEWARE_PATH = "django.contrib.auth.middleware.AuthenticationMiddleware"

_POSITIVE_INTS = (
    "BUFFER_SIZE",
    "REQUEST_BUFFER_SIZE",
    "MAX_STRING_LENGTH",
    "MAX_ITEMS",
    "MAX_DEPTH",
    "MAX_TRACEBACK_LENGTH",
    "MAX_REQUEST_ID_LENGTH",
    "MAX_ROWS",
    "STREAM_BUFFER_SIZE",
    "MAX_HELD_EVENTS",
    "STATS_WINDOW_SECONDS",
    "STORM_THRESHOLD",
    "QUERY_REPEAT_THRESHOLD",
    "QUERY_REQUEST_THRESHOLD",
    "STATS_MAX_KEYS",
    "HISTORY_SIZE",
    "HISTORY_RETENTION",
)
# Settings that are lists of strings, with an example of each.
_STRING_LISTS = {
    "SENSITIVE_KEYS": '["card_number", "iban"]',
    "IGNORE_SIGNALS": '["django.db.models.signals.post_init"]',
    "TRACE_ONLY_SIGNALS": '["myapp.signals.order_placed"]',
    "IGNORE_SENDERS": '["pizzeria.Topping"]',
}


@register()
def check_settings(**kwargs: Any) -> list[CheckMessage]:
    """The SIGNAL_DASHBOARD dict: a dict, known keys, sensible values."""
    user_config = getattr(settings, SETTING_NAME, {})
    if not isinstance(user_config, dict):
        return [
            Error(
                f"{SETTING_NAME} must be a dict.",
                hint=f"Got {type(user_config).__name__}.",
                id="signal_dashboard.E001",
            )
        ]
    messages: list[CheckMessage] = []
    unknown = sorted(set(user_config) - set(DEFAULTS))
    if unknown:
        messages.append(
            Warning(
                f"{SETTING_NAME} has unknown keys: {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                id="signal_dashboard.W001",
            )
        )
    for key in _POSITIVE_INTS:
        value = user_config.get(key, DEFAULTS[key])
        if type(value) is not int or value < 1:
            messages.append(
                Error(
                    f"{SETTING_NAME}[{key!r}] must be a positive integer.",
                    hint=f"Got {value!r}; the default is {DEFAULTS[key]!r}.",
                    id="signal_dashboard.E002",
                )
            )
    for key, example in _STRING_LISTS.items():
        if not _is_string_list(user_config.get(key, ())):
            messages.append(
                Error(
                    f"{SETTING_NAME}[{key!r}] must be a list of strings.",
                    hint=f"For example {example}.",
                    id="signal_dashboard.E003",
                )
            )
    for key in ("IGNORE_SIGNALS", "TRACE_ONLY_SIGNALS"):
        paths = user_config.get(key, ())
        if _is_string_list(paths):
            messages.extend(_signal_path_warnings(key, paths))
    rate = user_config.get("SAMPLE_RATE", DEFAULTS["SAMPLE_RATE"])
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        messages.append(
            Error(
                f"{SETTING_NAME}['SAMPLE_RATE'] must be a number from 0 to 1.",
                hint=f"Got {rate!r}; 0.1 traces one request in ten.",
                id="signal_dashboard.E006",
            )
        )
    url = user_config.get("REDIS_URL")
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://"))
    ):
        messages.append(
            Error(
                f"{SETTING_NAME}['REDIS_URL'] must be a redis:// (or rediss://, unix://) URL.",
                hint="For example 'redis://127.0.0.1:6379/0', or None to keep events in-process.",
                id="signal_dashboard.E004",
            )
        )
    elif url is not None and importlib.util.find_spec("channels_redis") is None:
        messages.append(
            Error(
                f"{SETTING_NAME}['REDIS_URL'] is set but channels_redis is not installed.",
                hint="pip install 'signal-dashboard[redis]'",
                id="signal_dashboard.E005",
            )
        )
    if user_config.get("OPENTELEMETRY") and importlib.util.find_spec("opentelemetry.sdk") is None:
        messages.append(
            Error(
                f"{SETTING_NAME}['OPENTELEMETRY'] is on but the OpenTelemetry SDK is not "
                "installed.",
                hint="pip install 'signal-dashboard[opentelemetry]'",
                id="signal_dashboard.E007",
            )
        )
    if user_config.get("CELERY") and importlib.util.find_spec("celery") is None:
        messages.append(
            Error(
                f"{SETTING_NAME}['CELERY'] is on but Celery is not installed.",
                hint="pip install 'signal-dashboard[celery]', or leave CELERY unset.",
                id="signal_dashboard.E008",
            )
        )
    return messages


def _is_string_list(value: object) -> bool:
    return (
        isinstance(value, Iterable)
        and not isinstance(value, str)
        and all(isinstance(item, str) for item in value)
    )


def _signal_path_warnings(key: str, paths: Iterable[str]) -> list[CheckMessage]:
    """IGNORE_SIGNALS' (or TRACE_ONLY_SIGNALS') paths that do not import, or do not name a
    Signal: tracing leaves them out, so the sends they were meant to leave out are traced (or
    those meant to be traced are not)."""
    messages: list[CheckMessage] = []
    for path in paths:
        try:
            signal_at(path)
        except NotASignal as err:
            messages.append(
                Warning(
                    f"{SETTING_NAME}[{key!r}]: {err}",
                    hint="Give the dotted path of a Signal object, such as "
                    "'django.db.models.signals.post_init'.",
                    id="signal_dashboard.W004",
                )
            )
        except Exception as err:  # importing a module may raise anything
            messages.append(
                Warning(
                    f"{SETTING_NAME}[{key!r}]: {path!r} does not import.",
                    hint=f"{type(err).__name__}: {err}",
                    id="signal_dashboard.W004",
                )
            )
    return messages


@register()
def check_doubled_receivers(**kwargs: Any) -> list[CheckMessage]:
    """A receiver connected twice to one signal runs twice per send."""
    from .web.registry import doubled_receivers

    return [
        Warning(
            f"{doubled.receiver} ({doubled.location}) is connected {doubled.runs} times to "
            f"{doubled.signal} for {_whom(doubled)}: it runs {doubled.runs} times per send"
            f"{'' if doubled.runs_for is None else f' from {doubled.runs_for}'}.",
            hint="Its module is probably imported under two names, or connect() runs more "
            "than once. Give connect() (or @receiver) a dispatch_uid, such as "
            f"dispatch_uid={doubled.receiver!r}, so that connecting it again replaces it.",
            id="signal_dashboard.W005",
        )
        for doubled in doubled_receivers()
    ]


def _whom(doubled: Any) -> str:
    """The senders a doubled receiver's connections that run together are for."""
    if doubled.runs_for is None:
        return "any sender"
    if None in doubled.senders:
        return f"{doubled.runs_for} or any sender"
    return doubled.runs_for


@register()
def check_middleware(**kwargs: Any) -> list[CheckMessage]:
    """Request correlation needs the middleware, after AuthenticationMiddleware."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if MIDDLEWARE_PATH not in middleware:
        return [
            Warning(
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE.",
                hint="Without it, signal events are not linked to the request that sent them.",
                id="signal_dashboard.W002",
            )
        ]
    if AUTH_MIDDLEWARE_PATH in middleware and middleware.index(MIDDLEWARE_PATH) < middleware.index(
        AUTH_MIDDLEWARE_PATH
    ):
        return [
            Warning(
                f"{MIDDLEWARE_PATH} comes before {AUTH_MIDDLEWARE_PATH}.",
                hint="Put it after AuthenticationMiddleware so events can name the user.",
                id="signal_dashboard.W003",
            )
        ]
    return []
