"""get_config(): defaults merged with the setting, refreshed when the setting changes."""

from __future__ import annotations

from typing import Any

from django.test import override_settings

from signal_dashboard.capture import events
from signal_dashboard.conf import DEFAULTS, get_config, tracing_enabled
from signal_dashboard.record.recorder import recorder


def test_defaults_merged_with_setting(settings: Any) -> None:
    settings.SIGNAL_DASHBOARD = {"BUFFER_SIZE": 7}
    config = get_config()
    assert config["BUFFER_SIZE"] == 7
    assert config["MAX_DEPTH"] == DEFAULTS["MAX_DEPTH"]


def test_enabled_follows_debug_by_default() -> None:
    with override_settings(SIGNAL_DASHBOARD={}, DEBUG=True):
        assert tracing_enabled()
    with override_settings(SIGNAL_DASHBOARD={}, DEBUG=False):
        assert not tracing_enabled()
    with override_settings(SIGNAL_DASHBOARD={"ENABLED": True}, DEBUG=False):
        assert tracing_enabled()


def test_buffer_resized_when_setting_changes() -> None:
    settings = {"ENABLED": True, "BUFFER_SIZE": 3, "MAX_STRING_LENGTH": 5}
    with override_settings(SIGNAL_DASHBOARD=settings):
        assert recorder.events.maxlen == 3
        assert events.bounds.limits.max_string == 5
    assert recorder.events.maxlen == DEFAULTS["BUFFER_SIZE"]
    assert events.bounds.limits.max_string == DEFAULTS["MAX_STRING_LENGTH"]
