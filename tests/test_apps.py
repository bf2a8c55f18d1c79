"""install() before django.setup(), no settings read at import, and the AppConfig's default."""

from __future__ import annotations

import pytest

from tests.processes import run_python


def test_install_before_setup_and_no_settings_read_at_import() -> None:
    output = run_python(
        """
        from signal_dashboard import tracing  # settings are not configured yet
        tracing.install()

        import django
        from django.conf import settings
        settings.configure(INSTALLED_APPS=[], SIGNAL_DASHBOARD={"BUFFER_SIZE": 5})
        django.setup()
        tracing.install()  # again, now that settings exist: re-reads them

        from django.dispatch import Signal
        from signal_dashboard.record.recorder import recorder
        signal = Signal()
        signal.connect(lambda sender, **kwargs: "ok", weak=False)
        with tracing.capture() as events:
            signal.send(sender=None)
        print(len(events), recorder.events.maxlen, events[0].receivers[0].result)
        """
    )
    assert output == "1 5 ok"


@pytest.mark.parametrize(
    ("debug", "enabled", "expected"),
    [(True, None, "True"), (False, None, "False"), (False, True, "True"), (True, False, "False")],
)
def test_app_config_installs_tracing_when_enabled(
    debug: bool, enabled: bool | None, expected: str
) -> None:
    output = run_python(
        f"""
        import django
        from django.conf import settings
        settings.configure(
            DEBUG={debug},
            INSTALLED_APPS=["signal_dashboard"],
            SIGNAL_DASHBOARD={{"ENABLED": {enabled}}},
        )
        django.setup()
        from signal_dashboard import tracing
        print(tracing.is_installed())
        """
    )
    assert output == expected


def test_connections_made_as_the_models_are_imported_are_watched() -> None:
    # Django imports every app's AppConfig, then every app's models, then runs the ready()
    # methods: a receiver doubled by a models module is seen from our AppConfig's import on.
    output = run_python(
        """
        import django
        from django.conf import settings
        settings.configure(
            DEBUG=True, INSTALLED_APPS=["signal_dashboard", "tests.early_app"]
        )
        django.setup()
        from signal_dashboard.record.recorder import recorder
        for finding in recorder.findings:
            print(finding.kind, finding.receiver, finding.signal)
        """
    )
    assert output == (
        "doubled tests.early_app.models.light_the_oven tests.early_app.models.oven_lit"
    )
