"""The test project's ASGI application, which the browser tests' live Daphne server runs."""

from __future__ import annotations

from typing import Any

from channels.routing import ProtocolTypeRouter
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application
from django.db.models.signals import post_save

from signal_dashboard.demo.pizzeria.models import Topping
from signal_dashboard.routing import websocket_application


def topping_saved(sender: type[Topping], instance: Topping, **kwargs: Any) -> None:
    """Gives Topping saves a receiver: a send to no receiver is not recorded."""


# The live server imports this module in its own process: a receiver connected by a test would
# not reach it.
post_save.connect(topping_saved, sender=Topping, dispatch_uid="tests.asgi.topping_saved")

django_application = get_asgi_application()
application = ProtocolTypeRouter({"http": django_application, "websocket": websocket_application})
# The same, serving the static files too, for a browser on a server run by tests.processes.
application_with_static = ProtocolTypeRouter(
    {"http": ASGIStaticFilesHandler(django_application), "websocket": websocket_application}
)
