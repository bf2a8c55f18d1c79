"""Settings for the test project with django-debug-toolbar's panels, its SQL panel among them
(tests/toolbar_scenario.py): both it and signal_dashboard wrap the queries a request runs."""

from __future__ import annotations

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS, MIDDLEWARE

DEBUG = True
INTERNAL_IPS = ["127.0.0.1"]
INSTALLED_APPS = [*INSTALLED_APPS, "debug_toolbar"]
MIDDLEWARE = ["debug_toolbar.middleware.DebugToolbarMiddleware", *MIDDLEWARE]
ROOT_URLCONF = "tests.urls_toolbar"
DEBUG_TOOLBAR_CONFIG = {"IS_RUNNING_TESTS": False}
