"""Settings for the test project run against a real PostgreSQL (tests/postgres_scenarios.py):
SIGNAL_DASHBOARD_TEST_PG_PORT names the port of a server that tests/postgres_server.py
started."""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": os.environ["SIGNAL_DASHBOARD_TEST_PG_PORT"],
    }
}
