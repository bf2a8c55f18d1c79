from __future__ import annotations

import sys

from django.apps import AppConfig
from django.conf import settings

from . import conf


class SignalDashboardConfig(AppConfig):
    name = "signal_dashboard"
    verbose_name = "Signal dashboard"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks, tracing  # noqa: F401  (checks register themselves)
        from .backends.redis import publisher

        if conf.tracing_enabled():
            tracing.install()
            publisher.start_publisher()
            trace_celery = conf.get_config()["CELERY"]
            if trace_celery or (trace_celery is None and "celery" in sys.modules):
                try:
                    from .integrations import celery
                except ImportError:  # check E008 says what to install
                    pass
                else:
                    celery.install()
            if conf.get_config()["OPENTELEMETRY"]:
                try:
                    from .integrations import otel
                except ImportError:  # check E007 says what to install
                    return
                otel.start()


def _watch_connections() -> None:
    """Watch connect() and disconnect() from now on: Django imports every app's AppConfig
    before any app's models, so the receivers the models modules and the apps' ready() connect
    (a doubled one, say) are seen. The sends are traced from ready() on."""
    if settings.configured and conf.tracing_enabled():
        from .capture import patch

        patch.watch_connections()


_watch_connections()
