"""What the browser tests stand on: a live Daphne server, a headless Chromium, a signed-in page.

Playwright's sync API keeps an event loop running on the calling thread, and Django refuses
database queries on a thread with a running loop: do database work before ``launch_browser()``,
or, like ``login()``, on a thread of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from asgiref.sync import SyncToAsync
from channels.testing import ChannelsLiveServerTestCase
from daphne.testing import DaphneProcess
from django.conf import settings
from django.db import connections
from django.test import Client
from playwright.sync_api import Browser, Page, sync_playwright

from signal_dashboard.record.recorder import recorder

# Debian's Chromium, which tests/run.py installs; Playwright cannot download a browser here.
CHROMIUM = "/usr/bin/chromium"
# Running as root needs --no-sandbox; the rest stop Chromium calling home (no network here).
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


class LiveServerProcess(DaphneProcess):
    """Daphne in a child forked from the test process, started afresh.

    asgiref runs thread-sensitive ``sync_to_async`` calls on a one-thread executor made at
    import. Once an earlier test has used it, the fork copies the executor but not its thread,
    so the child's first Django view would wait forever for a worker that never comes.
    The recorder is emptied too: the events of earlier tests are not the live server's.
    """

    def run(self) -> None:
        SyncToAsync.single_thread_executor = ThreadPoolExecutor(max_workers=1)
        recorder.clear()
        super().run()


class DashboardLiveServerTestCase(ChannelsLiveServerTestCase):
    """Serves ``settings.ASGI_APPLICATION`` (tests/asgi.py), static files included."""

    ProtocolServerProcess = LiveServerProcess
    serve_static = True


@contextmanager
def launch_browser() -> Iterator[Browser]:
    """Headless Chromium, closed (with Playwright) on the way out."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def login(page: Page, live_server_url: str, username: str, password: str) -> None:
    """Sign ``page`` in: a session made on the server side, handed over as the session cookie.

    The test project has no login page; the live server shares the test database, so a
    session saved here is valid there.
    """
    # A thread of its own: on this one, Playwright's running loop bars database queries.
    with ThreadPoolExecutor(max_workers=1) as executor:
        session_key = executor.submit(_session_key, username, password).result()
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session_key, "url": live_server_url}]
    )


def _session_key(username: str, password: str) -> str:
    try:
        client = Client()
        if not client.login(username=username, password=password):
            raise AssertionError(f"cannot log in as {username!r}")
        return client.cookies[settings.SESSION_COOKIE_NAME].value
    finally:
        connections.close_all()
