"""Settings for the demo site. Not for production: DEBUG is on and the secret key is public."""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = os.environ.get("DEMO_SECRET_KEY", "demo-only-insecure-key-never-use-in-production")
DEBUG = os.environ.get("DEMO_DEBUG", "true").lower() in {"1", "true", "yes", "on"}
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

# Django 6's tasks framework, or on Django 5.2 the django-tasks backport (an app of its own).
# Tasks run in the process that enqueues them; with DEMO_TASK_WORKER=1 (`demo --worker`) they
# are stored in the database, and a db_worker process (django-tasks-db) runs them.
TASKS_MODULE = "django.tasks" if find_spec("django.tasks") else "django_tasks"
TASKS_APPS = ([] if TASKS_MODULE == "django.tasks" else ["django_tasks"]) + ["django_tasks_db"]
TASKS = {"default": {"BACKEND": f"{TASKS_MODULE}.backends.immediate.ImmediateBackend"}}
if os.environ.get("DEMO_TASK_WORKER") == "1":
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

INSTALLED_APPS = [
    "daphne",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.admin",
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
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "signal_dashboard.demo.urls"
ASGI_APPLICATION = "signal_dashboard.demo.asgi.application"
# One daphne process, so the in-memory layer is enough to carry events to the dashboard.
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        # Tests point DEMO_DATABASE at a temporary file so they never touch demo.sqlite3.
        "NAME": os.environ.get("DEMO_DATABASE", BASE_DIR / "demo.sqlite3"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # The oven fire in pizza_done is on purpose and shows on the dashboard: keep its
    # send_robust() traceback off the console.
    "loggers": {"django.dispatch": {"level": "CRITICAL"}},
}

LOGIN_URL = "/admin/login/"

# REDIS_URL=redis://127.0.0.1:6379/0 puts the demo on the Redis transport: events and statistics
# of every process (this server, `manage.py` commands, scripts) reach the dashboard.
SIGNAL_DASHBOARD = {"ENABLED": True, "REDIS_URL": os.environ.get("REDIS_URL") or None}
# The pizzeria makes three signal mistakes on purpose, for the dashboard's signal hygiene to show
# (signal_dashboard/demo/pizzeria/mistakes.py).
PIZZERIA_SIGNAL_MISTAKES = True
