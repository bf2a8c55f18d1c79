"""WebSocket routing: one line in a project's asgi.py, after ``get_asgi_application()``::

from signal_dashboard.routing import websocket_application

application = ProtocolTypeRouter(
    {"http": django_asgi_app, "websocket": websocket_application}
)
"""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from django.urls import path

from .conf import get_config
from .web.access import OriginValidator
from .web.consumers import DashboardConsumer

websocket_urlpatterns = [path(get_config()["WEBSOCKET_PATH"], DashboardConsumer.as_asgi())]

# Only the dashboard's own pages (or trusted origins) may open it; the session cookie gives the
# user.
websocket_application = OriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
