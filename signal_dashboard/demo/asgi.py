"""ASGI entry point: ``daphne signal_dashboard.demo.asgi:application``."""

from __future__ import annotations

import os

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signal_dashboard.demo.settings")

django_asgi_app = get_asgi_application()

from signal_dashboard.routing import websocket_application  # noqa: E402  (needs Django set up)

application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket_application})
