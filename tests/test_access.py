"""Which pages may open the dashboard's WebSocket: its own origin, or a trusted one."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from signal_dashboard.routing import websocket_application
from tests.browser import DashboardLiveServerTestCase

# channels closes old database connections around each message, which counts as database access.
pytestmark = pytest.mark.django_db

HOST = "localhost:8000"  # in tests/settings.py's ALLOWED_HOSTS
TIMEOUT = 3


def handshake(
    origin: str | None,
    *,
    host: str = HOST,
    scheme: str | None = None,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> bool:
    """Whether the dashboard's socket accepts a handshake from a page of ``origin``."""
    sent = [(b"host", host.encode()), *headers]
    if origin is not None:
        sent.append((b"origin", origin.encode()))

    async def attempt() -> bool:
        communicator = WebsocketCommunicator(websocket_application, "/ws/signals/", headers=sent)
        if scheme is not None:
            communicator.scope["scheme"] = scheme
        connected, _ = await communicator.connect(timeout=TIMEOUT)
        if connected:  # then closed with 4403: nobody is signed in
            await communicator.disconnect()
        return connected

    return async_to_sync(attempt)()


@pytest.mark.parametrize(
    ("origin", "scheme"),
    [
        ("http://localhost:8000", None),  # the ASGI default scheme is ws
        ("http://localhost:8000", "ws"),
        ("https://localhost:8000", "wss"),
    ],
)
def test_the_pages_own_origin_is_accepted(origin: str, scheme: str | None) -> None:
    assert handshake(origin, scheme=scheme)


@pytest.mark.parametrize(
    ("origin", "scheme"),
    [
        ("http://localhost:9999", None),  # another port of the same host
        ("http://localhost", None),  # the default port is another port
        ("https://localhost:8000", None),  # another scheme
        ("http://localhost:8000", "wss"),
        ("http://127.0.0.1:8000", None),  # another host, though in ALLOWED_HOSTS
        ("http://evil.example:8000", None),
        ("null", None),  # a sandboxed page, a file, a redirect across origins
        (None, None),  # no Origin header at all
        ("http://localhost:8000, http://localhost:8000", None),
    ],
)
def test_other_origins_are_refused_at_the_handshake(origin: str | None, scheme: str | None) -> None:
    assert not handshake(origin, scheme=scheme)


def test_a_host_not_in_allowed_hosts_is_refused_even_as_its_own_origin() -> None:
    # A page of evil.example whose name was rebound to this server's address.
    assert not handshake("http://evil.example:8000", host="evil.example:8000")


def test_a_header_with_an_underscore_does_not_pass_for_the_proxys(settings: Any) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    assert not handshake("https://localhost:8000", headers=((b"x_forwarded_proto", b"https"),))


def test_the_scheme_follows_secure_proxy_ssl_header(settings: Any) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    behind_tls = ((b"x-forwarded-proto", b"https"),)

    assert handshake("https://localhost:8000", headers=behind_tls)
    assert not handshake("http://localhost:8000", headers=behind_tls)
    assert handshake("http://localhost:8000", headers=((b"x-forwarded-proto", b"http"),))


def test_the_host_follows_use_x_forwarded_host(settings: Any) -> None:
    settings.USE_X_FORWARDED_HOST = True
    proxied = ((b"x-forwarded-host", b"127.0.0.1:8080"),)

    assert handshake("http://127.0.0.1:8080", headers=proxied)
    assert not handshake("http://localhost:8000", headers=proxied)


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        ("https://admin.example.com", True),
        ("https://dashboards.example.org", True),  # under the wildcard
        ("https://a.b.example.org", True),
        ("https://example.org", True),
        ("http://admin.example.com", False),  # another scheme than the trusted one
        ("http://dashboards.example.org", False),
        ("https://admin.example.com:8443", False),  # another port
        ("https://dashboards.example.org:8443", False),
        ("https://www.example.com", False),  # not under a wildcard
        ("https://example.org.evil.example", False),
    ],
)
def test_csrf_trusted_origins_are_accepted(settings: Any, origin: str, accepted: bool) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://admin.example.com", "https://*.example.org"]

    assert handshake(origin) is accepted


class RefusedHandshakeTests(DashboardLiveServerTestCase):
    """What a browser sees: Daphne answers a refused handshake with 403."""

    def answer(self, origin: str | None) -> int:
        """The status of the handshake (101: opened) from a page of ``origin``."""
        try:
            socket = connect(
                self.live_server_ws_url + "/ws/signals/",
                origin=None if origin is None else Origin(origin),
                proxy=None,
                open_timeout=TIMEOUT,
            )
        except InvalidStatus as refused:
            return refused.response.status_code
        with socket, pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403  # opened, then closed: nobody is signed in
        return 101

    def test_only_the_pages_own_origin_opens_the_socket(self) -> None:
        own = self.live_server_url  # http://localhost:<port>
        port = int(own.rsplit(":", 1)[1])
        origins = [
            own,
            f"http://localhost:{port + 1}",
            f"https://localhost:{port}",
            f"http://127.0.0.1:{port}",
            "null",
            None,
        ]

        answers = {origin: self.answer(origin) for origin in origins}

        assert answers == {own: 101} | {origin: 403 for origin in origins[1:]}
