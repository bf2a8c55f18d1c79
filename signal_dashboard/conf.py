"""The ``SIGNAL_DASHBOARD`` settings dict, merged over ``DEFAULTS``: read here, and only here.

Modules ask :func:`get_config`, or keep what they derive from it: in a function made by
:func:`derived`, or, where every signal send reads it, in their own globals set by a function
registered with :func:`on_change`. All of it is read again after the setting changes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

SETTING_NAME = "SIGNAL_DASHBOARD"
T = TypeVar("T")

DEFAULTS: dict[str, Any] = {
    # None: trace when settings.DEBUG is on. True/False force it either way.
    "ENABLED": None,
    # How many recent events and request summaries the in-process recorder keeps.
    "BUFFER_SIZE": 2000,
    "REQUEST_BUFFER_SIZE": 500,
    # Record sends that reached no receiver (off: they cost what they cost in Django).
    "RECORD_EMPTY_SENDS": False,
    # The share of requests traced, from 0 to 1 (sends outside requests are always traced).
    "SAMPLE_RATE": 1.0,
    # Request path prefixes that are never traced. None: the dashboard's own URLs, STATIC_URL and
    # MEDIA_URL (when this site serves them) and /favicon.ico; a list replaces all of them.
    "EXCLUDE_PATHS": None,
    # Sends never traced: of these signals (dotted paths of Signal objects, such as
    # "django.db.models.signals.post_init"), and from these senders (labels as the dashboard
    # shows them, such as "pizzeria.Topping").
    "IGNORE_SIGNALS": (),
    # The allow list: when not empty, only these signals (dotted paths) are traced.
    "TRACE_ONLY_SIGNALS": (),
    "IGNORE_SENDERS": (),
    # Bounds of the payload summary.
    "MAX_STRING_LENGTH": 200,
    "MAX_ITEMS": 20,
    "MAX_DEPTH": 3,
    "MAX_TRACEBACK_LENGTH": 8000,
    # Extra keys to mask. Always masked, in any case and at any depth: keys containing what
    # Django's SafeExceptionReporterFilter hides (API, AUTH, TOKEN, KEY, SECRET, PASS, SIGNATURE,
    # HTTP_COOKIE), or SESSION, COOKIE or CSRF.
    "SENSITIVE_KEYS": (),
    "MASK": "********************",
    # Longest X-Request-ID accepted from a client; longer or malformed ones are replaced.
    "MAX_REQUEST_ID_LENGTH": 64,
    # Who may watch: dotted path of a callable taking the user and returning a bool.
    # None: active staff users.
    "ACCESS": None,
    # Where the dashboard's WebSocket is routed (see signal_dashboard.routing).
    "WEBSOCKET_PATH": "ws/signals/",
    # Sends, and receivers whose p95 latency is, at least this long are highlighted.
    "SLOW_MS": 100,
    # In each request or command (outside them, each second), the first this many sends of each
    # (signal, sender) are kept in full; further ones are timed and counted in the statistics and
    # folded, and only those whose receiver raised or took SLOW_MS are kept in full.
    # None: every send in full.
    "DETAIL_LIMIT": None,
    # Signal-hygiene findings about code the project did not write (Django's, an installed
    # package's) are left out of the dashboard, its exports and Redis; True records them too.
    "HYGIENE_INCLUDE_INSTALLED": False,
    # Export traced sends as OpenTelemetry spans (and folded sends' receiver durations as a
    # histogram), to the global tracer and meter providers: needs the opentelemetry extra.
    "OPENTELEMETRY": False,
    # Celery task runs as origins (see celery.py): None when Celery is imported by the time the
    # app is ready (a project's celery.py imported by its __init__.py, as Celery's Django guide
    # has it), True to import it, False never.
    "CELERY": None,
    # The rolling window of the latency statistics, beside the totals since start.
    "STATS_WINDOW_SECONDS": 300,
    # A receiver that runs more than this many times inside one request or command is a storm.
    "STORM_THRESHOLD": 50,
    # One receiver running the same SQL statement this many times or more inside one request or
    # command is a finding (an N+1 inside the receiver).
    "QUERY_REPEAT_THRESHOLD": 10,
    # A receiver whose calls inside one request or command ran more queries than this is one.
    "QUERY_REQUEST_THRESHOLD": 100,
    # Most (signal, sender, receiver) series the statistics keep; further ones count as overflow.
    "STATS_MAX_KEYS": 5000,
    # Rows a dashboard page keeps; older ones are removed as new ones arrive.
    "MAX_ROWS": 200,
    # Events waiting to be pushed to dashboards; past this the oldest are dropped and counted.
    "STREAM_BUFFER_SIZE": 5000,
    # Events a paused dashboard holds back; past this the oldest are dropped and counted.
    "MAX_HELD_EVENTS": 1000,
    # redis://host:port/db: every process publishes its events and statistics there, and every
    # dashboard shows all of them (needs channels_redis). None: this process only.
    "REDIS_URL": None,
    # With REDIS_URL: how many recent events of all processes Redis keeps for new dashboards.
    "HISTORY_SIZE": 2000,
    # ... and for how long at most, in seconds.
    "HISTORY_RETENTION": 3600,
}


@functools.cache
def get_config() -> dict[str, Any]:
    """Return DEFAULTS with the project's SIGNAL_DASHBOARD setting merged over it.

    A setting that is not a dict is ignored here; system check E001 reports it.
    """
    user_config = getattr(settings, SETTING_NAME, {})
    return {**DEFAULTS, **(user_config if isinstance(user_config, dict) else {})}


def current_config() -> dict[str, Any]:
    """get_config(), or DEFAULTS while Django's settings are not configured yet."""
    return get_config() if settings.configured else DEFAULTS


_derived: list[Any] = []


def derived(function: Callable[[dict[str, Any]], T]) -> Callable[[], T]:
    """``function(config)``, computed once and again after the settings change.

    For values read on hot paths: a call costs a dict lookup, not a computation.
    """

    @functools.cache
    def value() -> T:
        return function(current_config())

    _derived.append(value)
    return value


_listeners: list[Callable[[dict[str, Any]], None]] = []


def on_change(function: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """Call ``function(config)`` now and after every change of the settings."""
    _listeners.append(function)
    function(current_config())
    return function


def reset() -> None:
    """Read the settings again (done when one of ``_RESET_BY`` changes, and when tracing is
    installed, which may happen before Django's settings are configured)."""
    get_config.cache_clear()
    for value in _derived:
        value.cache_clear()
    config = current_config()
    for function in _listeners:
        function(config)


def tracing_enabled() -> bool:
    """Whether the AppConfig should install tracing at startup."""
    enabled = get_config()["ENABLED"]
    return bool(settings.DEBUG) if enabled is None else bool(enabled)


# The settings that values derived here read: ours, DEBUG (ENABLED's default), and the URLs
# of static and media files (EXCLUDE_PATHS's default).
# Ours, and Django's that what we derive depends on: paths excluded by default, and the
# number formats of the markup kept made (rows.STATUS_KEPT).
_RESET_BY = frozenset(
    {
        SETTING_NAME,
        "DEBUG",
        "STATIC_URL",
        "MEDIA_URL",
        "USE_THOUSAND_SEPARATOR",
        "NUMBER_GROUPING",
        "THOUSAND_SEPARATOR",
        "DECIMAL_SEPARATOR",
        "LANGUAGE_CODE",
    }
)


@receiver(setting_changed)
def _reset_config(*, setting: str, **kwargs: object) -> None:
    if setting in _RESET_BY:
        reset()
