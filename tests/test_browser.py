"""The dashboard in a real browser: headless Chromium against a live Daphne server.

Signals are caused by real HTTP requests to the live server, so events travel the whole way:
tracing, broadcast, channel layer, WebSocket, htmx, the page.
"""

from __future__ import annotations

import os
import re
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.browser import DashboardLiveServerTestCase, launch_browser, login

pytestmark = pytest.mark.browser

STAFF = "staff"
PASSWORD = "pw"
TOPPING_SAVES = (
    'tr.sd-row[data-signal="django.db.models.signals.post_save"][data-sender="pizzeria.Topping"]'
)
# Rows of other senders: each request to the live server sends request_started and
# request_finished, which Django's own receivers listen to.
OTHER_SENDERS = 'tr.sd-row:not([data-sender="pizzeria.Topping"])'
# The receiver tests/asgi.py connects, as the detail panel labels it.
TOPPING_RECEIVER = "tests.asgi.topping_saved"
# How soon a save must show on an open dashboard.
LIVE_WITHIN_MS = 2000
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}

# Set to a folder (docs/, say) to save the README's pictures of the dashboard there, at a
# laptop's 1280 by 800: the stream with a send's detail open, light and dark, the latency tab and
# a request's waterfall.
SCREENSHOTS = os.environ.get("SIGNAL_DASHBOARD_SCREENSHOTS", "")
LAPTOP: ViewportSize = {"width": 1280, "height": 800}

# In the page: open a raw WebSocket and resolve with how it ended and what came before.
WATCH_SOCKET = """(url) => new Promise((resolve) => {
  let messages = 0;
  let opened = false;
  const started = Date.now();
  const socket = new WebSocket(url);
  socket.onopen = () => { opened = true; };
  socket.onmessage = () => { messages += 1; };
  const end = (code) => resolve({code, messages, opened, ms: Date.now() - started});
  socket.onclose = (event) => end(event.code);
  setTimeout(() => end(null), 10000);
})"""
# Attempts at a socket whose opening handshake never completed (the page would reconnect).
SOCKET_ATTEMPTS = 3


class BrowserTestCase(DashboardLiveServerTestCase):
    """A live server per test class, a staff user per test."""

    def setUp(self) -> None:
        super().setUp()
        # Before any browser: while Playwright runs, this thread may not query the database.
        get_user_model().objects.create_user(STAFF, password=PASSWORD, is_staff=True)

    def request(self, path: str) -> None:
        """GET ``path`` from the live server, as any client would."""
        with urllib.request.urlopen(self.live_server_url + path, timeout=10) as response:
            assert response.status == 200

    def open_dashboard(self, browser: Browser) -> Page:
        """The dashboard, signed in as staff, once its WebSocket is open."""
        page = browser.new_page(viewport=VIEWPORT)
        login(page, self.live_server_url, STAFF, PASSWORD)
        page.goto(self.live_server_url + "/signals/")
        expect(page.locator("#sd-status")).to_have_text(re.compile(r"\bconnected\b"))
        return page


class DashboardInBrowserTests(BrowserTestCase):
    def test_live_rows_filter_and_receiver_timings(self) -> None:
        with launch_browser() as browser:
            page = self.open_dashboard(browser)
            toppings = page.locator(f"#sd-rows {TOPPING_SAVES}")
            others = page.locator(f"#sd-rows {OTHER_SENDERS}")

            self.request("/toppings/save/?name=basil")
            expect(toppings.first).to_be_visible(timeout=LIVE_WITHIN_MS)
            expect(toppings.first).to_have_attribute("data-ok", "true")
            expect(others.first).to_be_visible()
            expect(page.locator('#sd-senders option[value="pizzeria.Topping"]')).to_have_count(1)
            expect(page.locator("#sd-dropped")).to_have_text(re.compile(r"^\s*\d+\s*$"))

            sender = page.locator('#sd-filters [name="sender"]')
            sender.press_sequentially("pizzeria.Topping")
            sender.press("Tab")
            expect(page).to_have_url(re.compile(r"[?&]sender=pizzeria\.Topping(&|$)"))
            expect(others).to_have_count(0)
            expect(toppings).to_have_count(1)
            basil = toppings.first.get_attribute("data-id")
            assert basil

            # Under the filter, the next request's own request_started and request_finished
            # stay off the page; its save arrives, on top.
            self.request("/toppings/save/?name=oregano")
            expect(toppings).to_have_count(2, timeout=LIVE_WITHIN_MS)
            expect(toppings.nth(1)).to_have_attribute("data-id", basil)
            expect(others).to_have_count(0)

            toppings.first.click()
            receiver = page.locator("#sd-detail .sd-receiver")
            expect(receiver).to_have_count(1)
            expect(receiver.locator(".sd-receiver-label")).to_have_text(TOPPING_RECEIVER)
            expect(receiver.locator(".sd-receiver-duration")).to_have_text(
                re.compile(r"^\s*\d+\.\d{3} ms\s*$")
            )
            expect(page.locator("#sd-detail .sd-payload")).to_contain_text("created")

    def test_anonymous_users_get_neither_the_page_nor_the_stream(self) -> None:
        with launch_browser() as browser:
            page = browser.new_page()
            page.goto(self.live_server_url + "/signals/")
            expect(page).to_have_url(re.compile("login"))
            endings = []
            while len(endings) < SOCKET_ATTEMPTS and not (endings and endings[-1]["opened"]):
                endings.append(
                    page.evaluate(WATCH_SOCKET, self.live_server_ws_url + "/ws/signals/")
                )
        ending = endings[-1]
        assert (ending["code"], ending["messages"], ending["opened"]) == (4403, 0, True), endings

    @pytest.mark.skipif(not SCREENSHOTS, reason="SIGNAL_DASHBOARD_SCREENSHOTS is not set")
    def test_screenshots(self) -> None:
        folder = Path(SCREENSHOTS)
        names = ("basil", "oregano", "mozzarella", "olives", "anchovies", "rocket")
        with launch_browser() as browser:
            for scheme, name in (("light", "dashboard.png"), ("dark", "dashboard-dark.png")):
                page = browser.new_page(viewport=LAPTOP, color_scheme=scheme)
                login(page, self.live_server_url, STAFF, PASSWORD)
                page.goto(self.live_server_url + "/signals/")
                expect(page.locator("#sd-status")).to_have_text(re.compile(r"\bconnected\b"))
                for topping in names:
                    self.request(f"/toppings/save/?name={topping}-{scheme}")
                self.request(f"/toppings/async-save/?name=chili-{scheme}")
                self.request("/order/?name=margherita")
                toppings = page.locator(f"#sd-rows {TOPPING_SAVES}")
                expect(toppings.nth(len(names))).to_be_visible()
                toppings.first.click()
                expect(page.locator("#sd-detail .sd-receiver")).to_have_count(1)
                page.screenshot(path=folder / name)
                if scheme == "light":
                    page.click('a[data-tab="latency"]')
                    topping = page.locator(f'tr.sd-lat-row[data-name="{TOPPING_RECEIVER}"]')
                    expect(topping).to_be_visible()
                    topping.click()
                    expect(page.locator("#sd-receiver-detail .sd-slowest")).to_be_visible()
                    page.screenshot(path=folder / "latency.png", full_page=True)
                    page.click('a[data-tab="requests"]')
                    request = page.locator("#sd-request-rows tr.sd-req-row", has_text="save")
                    request.first.click()
                    expect(page.locator("#sd-request-detail .sd-bar").first).to_be_visible()
                    page.screenshot(path=folder / "waterfall.png", full_page=True)
                page.close()


class LatencyInBrowserTests(BrowserTestCase):
    """A server of its own: the buffer and statistics hold only this test's sends."""

    def test_latency_table_receiver_calls_and_request_waterfall(self) -> None:
        with launch_browser() as browser:
            page = self.open_dashboard(browser)
            self.request("/toppings/save/?name=basil")
            self.request("/toppings/save/?name=oregano")

            page.click('a[data-tab="latency"]')
            expect(page).to_have_url(re.compile("#latency$"))
            expect(page.locator("#sd-rows")).to_be_hidden()
            table = page.locator("#sd-latency")
            topping = table.locator(f'tr.sd-lat-row[data-name="{TOPPING_RECEIVER}"]')
            # Pushed over the socket: the page was rendered before these calls.
            expect(topping.locator("td").nth(1)).to_have_text("2", timeout=LIVE_WITHIN_MS * 2)
            expect(topping.locator("svg.sd-spark path").first).to_be_attached()
            expect(topping.locator("td").nth(5)).to_have_text(re.compile(r"^\s*\d+\.\d{3} ms\s*$"))
            expect(table.locator('button[data-sort="p95"]')).to_contain_text("▼")

            table.locator('button[data-sort="name"]').click()
            expect(table.locator('button[data-sort="name"]')).to_contain_text("▲")
            names = table.locator("tr.sd-lat-row").evaluate_all(
                "rows => rows.map((row) => row.dataset.name)"
            )
            assert TOPPING_RECEIVER in names
            assert names == sorted(names, key=str.lower)

            topping.click()
            detail = page.locator("#sd-receiver-detail")
            expect(detail).to_contain_text("2 calls since start")
            expect(detail.locator(".sd-slowest tbody tr")).to_have_count(2)

            page.click('a[data-tab="requests"]')
            saves = page.locator("#sd-request-rows tr.sd-req-row", has_text="GET /toppings/save/")
            expect(saves).to_have_count(2)
            saves.first.click()
            sends = page.locator('#sd-request-detail tr.sd-bar-row[data-kind="send"]')
            # Django's request_started opens the request's sends; request_finished closes them
            # once the server has closed the response.
            expect(sends.first).to_contain_text("signals.request_started")
            save = sends.filter(has_text="signals.post_save")
            expect(save).to_have_count(1)
            expect(save).to_have_attribute("data-depth", "0")
            # The receiver it reached is the row right after it.
            receiver = page.locator(
                '#sd-request-detail tr.sd-bar-row[data-kind="send"]:has-text("signals.post_save")'
                " + tr.sd-bar-row"
            )
            expect(receiver).to_have_attribute("data-depth", "1")
            expect(receiver).to_contain_text(TOPPING_RECEIVER)
            expect(receiver.locator(".sd-bar")).to_be_visible()
