"""Settings for the test project run in other processes (tests/processes.py) against real Redis.

The environment names the Redis server and, so that separate processes share one database, the
SQLite file: SIGNAL_DASHBOARD_TEST_REDIS_URL (required) and SIGNAL_DASHBOARD_TEST_DB.
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, INSTALLED_APPS

# Tasks are stored in the shared database, and a db_worker process (django-tasks-db) runs them.
INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_db"]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

SIGNAL_DASHBOARD = {
    "ENABLED": True,
    "REDIS_URL": os.environ["SIGNAL_DASHBOARD_TEST_REDIS_URL"],
    # Celery task runs (tests/celery_app.py): the app is imported when a view first uses it.
    "CELERY": True,
}

_shared_db = os.environ.get("SIGNAL_DASHBOARD_TEST_DB")
if _shared_db:
    # TEST NAME too: a test runner started in one of these processes must not make its own.
    DATABASES = {
        **DATABASES,
        "default": {**DATABASES["default"], "NAME": _shared_db, "TEST": {"NAME": _shared_db}},
    }
