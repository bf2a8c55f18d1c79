from __future__ import annotations

from django.apps import AppConfig


class SignalDashboardConfig(AppConfig):
    name = "signal_dashboard"
    verbose_name = "Signal dashboard"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks, conf, tracing, transport  # noqa: F401  (checks register themselves)

        if conf.tracing_enabled():
            tracing.install()
            transport.start_publisher()
