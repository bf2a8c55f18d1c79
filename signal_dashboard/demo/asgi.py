"""ASGI entry point: ``daphne signal_dashboard.demo.asgi:application``."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signal_dashboard.demo.settings")

application = get_asgi_application()
