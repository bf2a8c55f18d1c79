"""Who may watch the dashboard: active staff users, or what the ACCESS setting says; and which
pages may open its WebSocket: the dashboard's own, or those of CSRF_TRUSTED_ORIGINS."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import DisallowedHost, PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.http import is_same_domain
from django.utils.module_loading import import_string

from ..conf import get_config

logger = logging.getLogger("signal_dashboard")

# The scheme of the page that may open a socket of each WebSocket scheme.
_PAGE_SCHEMES = {"ws": "http", "wss": "https"}


def can_view(user: Any) -> bool:
    """Whether ``user`` may see the dashboard and its stream."""
    if user is None or not user.is_authenticated:
        return False
    check = get_config()["ACCESS"]
    if check is None:
        return bool(user.is_active and user.is_staff)
    return bool(_load(check)(user))


@functools.cache
def _load(path: str) -> Callable[[Any], bool]:
    return import_string(path)


class OriginValidator:
    """ASGI middleware refusing a WebSocket handshake (HTTP 403) unless its ``Origin`` is the
    page's own (scheme, host and port of the socket's ``Host``) or one of
    ``CSRF_TRUSTED_ORIGINS``, as Django's ``CsrfViewMiddleware`` checks unsafe requests.

    The cookie that gives the socket its user goes with the handshake whatever page opens it, so
    a page of another origin (another port of the same host, say) must not get the stream.
    """

    def __init__(self, application: Callable[..., Any]) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError(f"OriginValidator guards WebSocket connections, not {scope['type']}.")
        handshake = _Handshake(scope)
        if _origin_allowed(handshake):
            return await self.application(scope, receive, send)
        logger.warning(
            "Refused the dashboard's WebSocket: origin %r is neither the page's own (host %r) "
            "nor in CSRF_TRUSTED_ORIGINS",
            handshake.META.get("HTTP_ORIGIN"),
            handshake.META.get("HTTP_HOST"),
        )
        # Closing before accepting makes the server refuse the handshake with a 403.
        return await WebsocketDenier()(scope, receive, send)


class _Handshake(HttpRequest):
    """A WebSocket handshake as Django sees a request: its headers in ``META`` (as
    ``ASGIRequest`` puts them), so ``get_host()`` and ``is_secure()`` follow ``ALLOWED_HOSTS``,
    ``USE_X_FORWARDED_HOST`` and ``SECURE_PROXY_SSL_HEADER``."""

    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__()
        # The ASGI default is "ws"; an "http" or "https" scheme stays as it is.
        scheme = scope.get("scheme") or "ws"
        self._scope_scheme = _PAGE_SCHEMES.get(scheme, scheme)
        server = scope.get("server")
        self.META["SERVER_NAME"], self.META["SERVER_PORT"] = (
            (server[0], str(server[1])) if server else ("unknown", "0")
        )
        headers: dict[str, list[str]] = {}
        for raw_name, raw_value in scope.get("headers", ()):
            name = raw_name.decode("latin1")
            if "_" in name:  # X_Forwarded_Proto must not pass for X-Forwarded-Proto
                continue
            key = "HTTP_" + name.upper().replace("-", "_")
            headers.setdefault(key, []).append(raw_value.decode("latin1"))
        self.META.update((key, ",".join(values)) for key, values in headers.items())

    def _get_scheme(self) -> str:
        return self._scope_scheme


def _origin_allowed(request: HttpRequest) -> bool:
    """Whether ``request``'s ``Origin`` is its own or trusted (``CsrfViewMiddleware``'s rule
    for unsafe requests); a missing ``Origin`` is not."""
    origin = request.META.get("HTTP_ORIGIN")
    if origin is None:
        return False
    try:
        own = f"{'https' if request.is_secure() else 'http'}://{request.get_host()}"
    except DisallowedHost:
        pass
    else:
        if origin == own:
            return True
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in trusted and "*" not in origin:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    return any(
        is_same_domain(parsed.netloc, pattern.netloc.lstrip("*"))
        for pattern in map(urlsplit, (entry for entry in trusted if "*" in entry))
        if pattern.scheme == parsed.scheme
    )


def dashboard_access(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous users go to the login page; signed-in users who may not watch get a 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not can_view(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper
