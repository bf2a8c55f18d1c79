from __future__ import annotations

import sys

from django.apps import AppConfig


class SignalDashboardConfig(AppConfig):
    name = "signal_dashboard"
    verbose_name = "Signal dashboard"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks, conf, tracing  # noqa: F401  (checks register themselves)
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
