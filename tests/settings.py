"""Settings for the test suite: a small project with the app and the demo pizzeria installed."""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path
from tempfile import gettempdir

# The repository root, so the top-level templates/ and static/ work from a source checkout.
BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "signal-dashboard-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]

# Django 6's tasks framework, or on Django 5.2 the django-tasks backport (an app of its own).
TASKS_MODULE = "django.tasks" if find_spec("django.tasks") else "django_tasks"
TASKS_APPS = [] if TASKS_MODULE == "django.tasks" else ["django_tasks"]
TASKS = {"default": {"BACKEND": f"{TASKS_MODULE}.backends.immediate.ImmediateBackend"}}

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "signal_dashboard",
    "signal_dashboard.demo.pizzeria",
    *TASKS_APPS,
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "signal_dashboard.middleware.SignalDashboardMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"
ASGI_APPLICATION = "tests.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "tests" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# pytest-django creates the test database. It is a file, not SQLite's in-memory default, because
# the browser tests' live server runs in another process and must open the same database; one
# file per test run, so that runs side by side don't share it.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
        "TEST": {"NAME": str(Path(gettempdir()) / f"signal-dashboard-tests-{os.getpid()}.sqlite3")},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Tests create users; the default hasher is deliberately slow.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

TIME_ZONE = "UTC"
USE_TZ = True

STATIC_URL = "static/"

SIGNAL_DASHBOARD = {"ENABLED": True}

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
