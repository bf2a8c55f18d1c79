"""The dashboard as a developer keeps it open: it fits, says what it does, and never surprises.

Headless Chromium against a live Daphne server, at a laptop's 1280 by 800, in light and dark.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Browser, Locator, Page, ViewportSize, expect

from tests.browser import DashboardLiveServerTestCase, launch_browser, login

pytestmark = pytest.mark.browser

STAFF = "staff"
PASSWORD = "pw"
LAPTOP: ViewportSize = {"width": 1280, "height": 800}
LIVE_WITHIN_MS = 3000
TOPPING_SAVES = 'tr.sd-row[data-sender="pizzeria.Topping"]'
# Rows of sends (not of signal-hygiene findings).
SENDS = "#sd-rows tr:not(.sd-finding)"
TOPPING_RECEIVER = "tests.asgi.topping_saved"
LONG_SIGNAL = "tests.urls.kitchen_inventory_recounted_after_the_evening_delivery"
REQUEST_STARTED = "django.core.signals.request_started"
REQUEST_FINISHED = "django.core.signals.request_finished"
# Times the duplicate-row race is driven: a request, then at once a filter change.
RACES = 20

# Elements wider than the page, or cut without an ellipsis: what a user would scroll to or miss.
OVERFLOW = """() => {
  const page = document.documentElement;
  const cut = [];
  for (const cell of document.querySelectorAll(".sd-events td")) {
    const style = getComputedStyle(cell);
    if (cell.scrollWidth > cell.clientWidth + 1 && style.textOverflow !== "ellipsis") {
      cut.push(cell.textContent.trim().slice(0, 40));
    }
  }
  const detail = document.querySelector(".sd-detail");
  return {
    pageScroll: page.scrollWidth - page.clientWidth,
    detailScroll: detail.scrollWidth - detail.clientWidth,
    cut,
    rightmost: Math.max(...Array.from(
      document.querySelectorAll(".sd-events th"), (th) => th.getBoundingClientRect().right)),
    width: window.innerWidth,
  };
}"""

# WCAG contrast ratio of an element's text against the page background.
CONTRAST = """(selector) => {
  const channel = (value) => {
    value /= 255;
    return value <= 0.03928 ? value / 12.92 : Math.pow((value + 0.055) / 1.055, 2.4);
  };
  const luminance = (color) => {
    const [r, g, b] = color.match(/[\\d.]+/g).map(Number);
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const element = document.querySelector(selector);
  const fg = luminance(getComputedStyle(element).color);
  const bg = luminance(getComputedStyle(document.body).backgroundColor);
  return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
}"""


class UxTestCase(DashboardLiveServerTestCase):
    def setUp(self) -> None:
        super().setUp()
        get_user_model().objects.create_user(STAFF, password=PASSWORD, is_staff=True)

    def request(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.live_server_url + path, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def open_dashboard(self, browser: Browser, path: str = "/signals/", **options: Any) -> Page:
        page = browser.new_page(viewport=LAPTOP, **options)
        login(page, self.live_server_url, STAFF, PASSWORD)
        page.goto(self.live_server_url + path)
        expect(page.locator("#sd-status")).to_have_text(re.compile(r"\bconnected\b"))
        return page

    def filter_by(self, page: Page, name: str, value: str) -> None:
        field = page.locator(f'#sd-filters [name="{name}"]')
        field.fill(value)
        field.press("Tab")


# The text of each element where a line breaks inside a word: anywhere but after a dot, an
# underscore, a slash, a colon, a comma or a space, or between the words of a CamelCase name.
MID_WORD_BREAKS = """(elements) => {
    const broken = [];
    for (const element of elements) {
        if (element.textContent.trim().startsWith("<")) continue;  // <sender id 0x...>: no name
        const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
        let before = null;
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (let index = 0; index < node.length; index++) {
                const range = document.createRange();
                range.setStart(node, index);
                range.setEnd(node, index + 1);
                const box = range.getClientRects()[0];
                if (!box) continue;
                const char = node.data[index];
                const between = /[._/:,\\s]/.test(before ? before.char : " ")
                    || /\\s/.test(char) || (/[a-z]/.test(before.char) && /[A-Z]/.test(char));
                if (before && box.top > before.top + 2 && !between) {
                    broken.push(element.textContent.trim().slice(0, 80) + " | at " + index);
                }
                before = {char: char, top: box.top};
            }
        }
    }
    return broken;
}"""


# Text cut in the stream's header and in the first row of each signal (but an error message: it
# ends in an ellipsis, whole in the cell's title), among the columns shown.
CUT_CELLS = """() => {
  const first = new Map();
  for (const row of document.querySelectorAll("#sd-rows > tr")) {
    if (!first.has(row.dataset.signal)) first.set(row.dataset.signal, row);
  }
  const cells = Array.from(document.querySelectorAll(".sd-events th"));
  for (const row of first.values()) {
    cells.push(...Array.from(row.cells).filter((cell, index) => index !== 6));
  }
  const cut = (cell) => cell.offsetParent !== null && cell.scrollWidth > cell.clientWidth + 1;
  return cells.filter(cut).map((cell) => cell.textContent.trim().slice(0, 40));
}"""
# The stream's share of the width under the tabs.
STREAM_SHARE = """() => document.querySelector(".sd-events").getBoundingClientRect().width
  / document.querySelector(".sd-tabs").getBoundingClientRect().width"""
# How far down the viewport an element starts, and whether it holds the focus.
IN_VIEW = """(element) => ({
  // Its first lines at least are on screen.
  top: element.getBoundingClientRect().top,
  bottom: window.innerHeight,
  focused: element === document.activeElement || element.contains(document.activeElement),
})"""


class FitTests(UxTestCase):
    def check_stream(self, page: Page) -> None:
        """Nothing cut in the stream's first rows, and names wrap only between their parts."""
        assert page.evaluate(CUT_CELLS) == []
        assert page.locator("#sd-rows td.sd-name").evaluate_all(MID_WORD_BREAKS) == []
        assert page.evaluate(OVERFLOW)["pageScroll"] <= 0

    def check_fit(self, page: Page) -> None:
        self.request("/long/")
        self.request("/toppings/save/?name=basil")
        # (The class's live server keeps the rows of its earlier test.)
        row = page.locator(f'#sd-rows tr.sd-row[data-signal="{LONG_SIGNAL}"]').first
        expect(row).to_be_visible(timeout=LIVE_WITHIN_MS)
        layout = page.evaluate(OVERFLOW)
        assert layout["pageScroll"] <= 0, layout
        assert layout["rightmost"] <= layout["width"], layout
        assert layout["cut"] == [], layout
        # Until a row is opened, the stream has the whole width, and nothing in it is cut.
        expect(page.locator(".sd-detail")).to_be_hidden()
        assert page.evaluate(STREAM_SHARE) > 0.98
        self.check_stream(page)
        started = page.locator(f'#sd-rows tr[data-signal="{REQUEST_STARTED}"] td').nth(1)
        assert started.inner_text().strip() == "request_started"
        # Long cells end in an ellipsis, with the whole text on hover.
        outcome = row.locator("td").nth(6)
        assert outcome.evaluate("(cell) => cell.scrollWidth > cell.clientWidth")
        assert "forty crates of tomatoes" in (outcome.get_attribute("title") or "")
        sender = row.locator("td").nth(2)
        assert sender.get_attribute("title") == (
            "central_kitchen.deliveries.EveningDeliveryFromTheSupplierWarehouse"
        )

        row.click()
        expect(row).to_have_class(re.compile(r"\bsd-selected\b"))
        expect(page.locator(".sd-detail")).to_be_visible()
        assert page.evaluate(STREAM_SHARE) < 0.8
        self.check_stream(page)
        receiver = page.locator("#sd-detail .sd-receiver-label")
        expect(receiver).to_contain_text(
            "reconcile_the_walk_in_refrigerator_inventory_with_the_supplier_invoice"
        )
        # The title and labels wrap at their dots and underscores, never inside a word.
        assert page.locator("#sd-detail h2 wbr").count() >= 2
        assert (
            page.locator("#sd-detail h2, #sd-detail .sd-label, .sd-receiver-label").evaluate_all(
                MID_WORD_BREAKS
            )
            == []
        )
        layout = page.evaluate(OVERFLOW)
        assert layout["detailScroll"] <= 0, layout
        assert layout["pageScroll"] <= 0, layout
        traceback = page.locator("#sd-detail pre.sd-traceback")
        assert traceback.evaluate("(pre) => pre.scrollWidth <= pre.clientWidth + 1")

        panel = page.locator(".sd-detail")
        narrow = panel.bounding_box()
        page.click("#sd-widen")
        expect(page.locator("#sd-widen")).to_have_attribute("aria-pressed", "true")
        wide = panel.bounding_box()
        assert narrow is not None
        assert wide is not None
        assert wide["width"] > narrow["width"] * 1.5
        # The narrowed stream keeps what names a send, whole: "Caused by" too.
        expect(page.locator(".sd-events th", has_text="Caused by")).to_be_visible()
        expect(page.locator(".sd-events th", has_text="Outcome")).to_be_hidden()
        self.check_stream(page)

        page.click("#sd-widen")  # back to the narrow panel, beside the tables
        page.click("#sd-close")
        expect(page.locator(".sd-detail")).to_be_hidden()
        assert page.evaluate(STREAM_SHARE) > 0.98
        page.click('a[data-tab="latency"]')
        expect(page.locator("#sd-latency tr.sd-lat-row").first).to_be_visible()
        assert page.locator("#sd-latency td").evaluate_all(MID_WORD_BREAKS) == []
        page.goto(self.live_server_url + "/signals/registry/")
        assert (
            page.locator(
                ".sd-signal-row th, .sd-registry-receiver td:nth-child(1), "
                ".sd-registry-receiver td:nth-child(3)"
            ).evaluate_all(MID_WORD_BREAKS)
            == []
        )

    def test_everything_is_readable_at_1280_by_800(self) -> None:
        with launch_browser() as browser:
            self.check_fit(self.open_dashboard(browser))

    def test_everything_is_readable_at_1440_by_900(self) -> None:
        with launch_browser() as browser:
            page = self.open_dashboard(browser)
            page.set_viewport_size({"width": 1440, "height": 900})
            self.check_fit(page)

    def test_everything_is_readable_at_1280_by_800_in_dark_mode(self) -> None:
        with launch_browser() as browser:
            page = self.open_dashboard(browser, color_scheme="dark")
            assert page.evaluate("getComputedStyle(document.body).backgroundColor") == (
                "rgb(13, 17, 23)"
            )
            self.check_fit(page)


class ThemeTests(UxTestCase):
    def test_dark_mode_follows_the_system_and_the_toggle_is_kept(self) -> None:
        with launch_browser() as browser:
            page = self.open_dashboard(browser, color_scheme="dark")
            self.request("/long/")
            failed = page.locator("#sd-rows tr.sd-failed:not(.sd-finding)")
            expect(failed).to_have_count(1, timeout=LIVE_WITHIN_MS)
            background = "getComputedStyle(document.body).backgroundColor"
            assert page.evaluate(background) == "rgb(13, 17, 23)"
            for selector in ("#sd-rows td", ".sd-status", ".sd-error-text", "a"):
                assert page.evaluate(CONTRAST, selector) >= 4.5, selector

            page.click("#sd-theme")
            assert page.evaluate(background) == "rgb(255, 255, 255)"
            for selector in ("#sd-rows td", ".sd-status", ".sd-error-text", "a"):
                assert page.evaluate(CONTRAST, selector) >= 4.5, selector
            page.reload()
            assert page.evaluate(background) == "rgb(255, 255, 255)"  # kept in localStorage
            assert page.evaluate("localStorage.getItem('signal-dashboard-theme')") == "light"
            page.click("#sd-theme")
            assert page.evaluate(background) == "rgb(13, 17, 23)"


class DuplicateRowTests(UxTestCase):
    def test_a_filter_changed_right_after_a_request_never_shows_a_row_twice(self) -> None:
        with launch_browser() as browser:
            page = self.open_dashboard(browser)
            sender = page.locator('#sd-filters [name="sender"]')
            for attempt in range(RACES):
                self.request(f"/toppings/save/?name=race{attempt}")
                sender.fill("pizzeria" if attempt % 2 else "Topping")
                sender.press("Tab")
                expect(page.locator(f"#sd-rows {TOPPING_SAVES}")).to_have_count(
                    attempt + 1, timeout=LIVE_WITHIN_MS
                )
                ids = page.locator("#sd-rows tr").evaluate_all(
                    "(rows) => rows.map((row) => row.dataset.id)"
                )
                assert len(ids) == len(set(ids)), (attempt, ids)


class FilterInputTests(UxTestCase):
    def test_a_pasted_filter_applies_in_place_and_senders_are_listed_once(self) -> None:
        self.request("/toppings/save/?name=basil")
        with launch_browser() as browser:
            page = self.open_dashboard(browser)  # its list of senders made with the page
            self.request("/toppings/save/?name=thyme")  # and the same senders pushed
            expect(page.locator(f"#sd-rows {TOPPING_SAVES}")).to_have_count(
                2, timeout=LIVE_WITHIN_MS
            )
            senders = page.locator("#sd-senders option").evaluate_all(
                "(options) => options.map((option) => option.value)"
            )
            assert senders
            assert len(senders) == len(set(senders)), senders
            # Pasted with the mouse: an input event, no key, and the field keeps the focus.
            field = page.locator('#sd-filters [name="sender"]')
            field.focus()
            page.evaluate(
                """() => {
                    const field = document.querySelector('#sd-filters [name="sender"]');
                    field.value = "no-such-sender";
                    field.dispatchEvent(new InputEvent("input", {bubbles: true}));
                }"""
            )
            expect(page).to_have_url(re.compile(r"sender=no-such-sender"))
            expect(field).to_be_focused()


class FilterFeedbackTests(UxTestCase):
    def test_a_rejected_filter_says_so_and_changes_no_link(self) -> None:
        with launch_browser() as browser:
            page = self.open_dashboard(browser, path="/signals/?sender=Topping")
            events = page.locator("#sd-download-events")
            expect(events).to_have_attribute("href", re.compile(r"\?sender=Topping$"))
            before = page.url

            self.filter_by(page, "min_duration_ms", "-5")
            error = page.locator("#sd-error")
            expect(error).to_be_visible()
            expect(error).to_contain_text("min_duration_ms cannot be negative.")
            expect(error).to_contain_text("Still in effect: sender=Topping")
            assert page.url == before
            expect(events).to_have_attribute("href", re.compile(r"\?sender=Topping$"))

            self.filter_by(page, "min_duration_ms", "1.5")
            expect(page).to_have_url(re.compile(r"min_duration_ms=1\.5"))
            expect(error).to_be_hidden()
            expect(events).to_have_attribute("href", re.compile(r"min_duration_ms=1\.5"))
            href = events.get_attribute("href")
            response = page.request.get(self.live_server_url + (href or ""))
            assert response.status == 200

    def test_empty_results_clear_and_selection_are_said(self) -> None:
        with launch_browser() as browser:
            page = self.open_dashboard(browser)
            self.request("/toppings/save/?name=basil")
            rows = page.locator(f"#sd-rows {TOPPING_SAVES}")
            expect(rows).to_have_count(1, timeout=LIVE_WITHIN_MS)
            expect(page.locator("#sd-empty")).to_be_hidden()

            self.filter_by(page, "sender", "no.such.Sender")
            empty = page.locator("#sd-empty")
            expect(empty).to_be_visible()
            expect(empty).to_have_text("No events match the filter (sender=no.such.Sender).")
            assert "sender=no.such.Sender" in page.title()

            page.click("#sd-clear-filters")
            expect(rows).to_have_count(1)
            rows.first.click()
            expect(rows.first).to_have_attribute("aria-selected", "true")

            page.click("#sd-clear")
            notice = page.locator("#sd-notice")
            expect(notice).to_be_visible()
            expect(notice).to_contain_text("Cleared")
            expect(notice).to_contain_text("Reloading it shows the buffered events again")
            expect(page.locator("#sd-rows tr")).to_have_count(0)
            expect(page.locator("#sd-empty")).to_be_visible()


class HideTests(UxTestCase):
    def test_hiding_a_signal_sender_or_receiver_is_a_filter_in_the_url(self) -> None:
        with launch_browser() as browser:
            page = self.open_dashboard(browser)
            self.request("/toppings/save/?name=basil")
            started = page.locator(f'#sd-rows tr[data-signal="{REQUEST_STARTED}"]')
            toppings = page.locator(f"#sd-rows {TOPPING_SAVES}")
            expect(toppings).to_have_count(1, timeout=LIVE_WITHIN_MS)
            expect(started.first).to_be_visible()

            page.click("#sd-hide-requests")
            expect(started).to_have_count(0)
            expect(page).to_have_url(re.compile(r"hide_signals=django\.core\.signals\.request"))
            chips = page.locator("#sd-state .sd-chip")
            expect(chips).to_have_count(2)

            toppings.first.click()
            page.locator('#sd-detail [data-hide-field="hide_receivers"]').click()
            expect(toppings).to_have_count(0)
            expect(page).to_have_url(re.compile(r"hide_receivers=tests\.asgi\.topping_saved"))
            self.request("/toppings/save/?name=oregano")
            # Hidden live as well. (Rows of signal-hygiene findings may show: the live server
            # is forked from the tests' process, whose weak receivers it sees collected.)
            expect(page.locator(SENDS)).to_have_count(0)

            page.reload()  # the URL keeps what is hidden
            expect(page.locator("#sd-state .sd-chip")).to_have_count(3)
            expect(page.locator(SENDS)).to_have_count(0)
            page.locator('.sd-chip[data-label="tests.asgi.topping_saved"] .sd-unhide').click()
            expect(toppings).to_have_count(2)
            expect(page).not_to_have_url(re.compile("hide_receivers"))


class KeyboardTests(UxTestCase):
    def test_the_stream_can_be_driven_from_the_keyboard(self) -> None:
        with launch_browser() as browser:
            page = self.open_dashboard(browser)
            self.request("/toppings/save/?name=basil")
            expect(page.locator(f"#sd-rows {TOPPING_SAVES}")).to_have_count(
                1, timeout=LIVE_WITHIN_MS
            )
            selected = page.locator("#sd-rows tr.sd-selected")
            # Rows may still arrive on top: the selection is followed by id, not by position.
            order = "(rows) => rows.map((row) => row.dataset.id)"
            page.keyboard.press("j")
            expect(selected).to_have_count(1)
            first = selected.get_attribute("data-id")
            page.keyboard.press("j")
            second = selected.get_attribute("data-id")
            ids = page.locator("#sd-rows tr").evaluate_all(order)
            assert ids.index(second) == ids.index(first) + 1, (first, second, ids)
            page.keyboard.press("k")
            expect(selected).to_have_attribute("data-id", first or "")
            page.keyboard.press("Enter")
            expect(page.locator("#sd-detail .sd-detail-body")).to_be_visible()
            page.keyboard.press("Escape")
            expect(page.locator("#sd-detail .sd-detail-body")).to_have_count(0)

            pause = page.locator("#sd-pause")
            expect(pause).to_have_text("Pause")
            expect(pause).to_have_attribute("aria-pressed", "false")
            page.keyboard.press("p")
            expect(page.locator("#sd-held")).to_be_visible()
            # One toggle, pressed while paused; the status line's parts are set apart.
            expect(pause).to_have_text("Resume")
            expect(pause).to_have_attribute("aria-pressed", "true")
            expect(page.locator("#sd-resume")).to_have_count(0)
            self.request("/toppings/save/?name=oregano")
            expect(page.locator("#sd-held")).to_contain_text(re.compile(r"[1-9]\d* held back"))
            assert re.search(r"\d dropped .*· paused · \d+ held back", status_text(page))
            page.keyboard.press("p")
            expect(page.locator("#sd-held")).to_be_hidden()
            expect(pause).to_have_text("Pause")
            expect(pause).to_have_attribute("aria-pressed", "false")
            expect(page.locator(f"#sd-rows {TOPPING_SAVES}")).to_have_count(2)

            page.keyboard.press("/")
            expect(page.locator('#sd-filters [name="sender"]')).to_be_focused()
            page.keyboard.press("Escape")
            page.keyboard.press("?")
            help_list = page.locator("#sd-help")
            expect(help_list).to_be_visible()
            expect(help_list).to_contain_text("Pause or resume the stream")
            page.keyboard.press("Escape")
            expect(help_list).to_be_hidden()


class TabsTests(UxTestCase):
    def test_every_tab_follows_the_filters_and_keeps_its_state_in_the_url(self) -> None:
        with launch_browser() as browser:
            page = self.open_dashboard(browser)
            self.request("/toppings/save/?name=basil")
            self.request("/order/?name=margherita")
            assert self.request("/static/signal_dashboard/dashboard.css") == 200
            assert self.request("/favicon.ico") == 404

            # A fragment edited in the address bar switches tabs as a click does.
            page.evaluate("window.location.hash = 'latency'")
            expect(page.locator('[data-panel="latency"]')).to_be_visible()
            expect(page.locator('a[data-tab="latency"]')).to_have_attribute("aria-selected", "true")
            page.click('a[data-tab="requests"]')
            requests = page.locator("#sd-request-rows tr.sd-req-row")
            expect(requests).to_have_count(2, timeout=LIVE_WITHIN_MS * 2)
            expect(page.locator("#sd-request-rows")).not_to_contain_text("/static/")
            expect(page.locator("#sd-request-rows")).not_to_contain_text("favicon")
            self.filter_by(page, "path", "/order/")
            expect(requests).to_have_count(1)
            expect(requests.first).to_contain_text("GET /order/")
            assert page.title().startswith("Requests")

            page.click('a[data-tab="latency"]')
            page.select_option('#sd-table-controls [name="group"]', "signal")
            expect(page).to_have_url(re.compile(r"group=signal"))
            page.select_option('#sd-table-controls [name="span"]', "all")
            expect(page).to_have_url(re.compile(r"span=all"))
            stats = page.locator("#sd-download-stats")
            expect(stats).to_have_attribute("href", re.compile(r"span=all"))
            page.locator('#sd-latency button[data-sort="count"]').click()
            expect(page).to_have_url(re.compile(r"sort=count"))
            expect(page.locator("#sd-latency .sd-spark-range").first).to_contain_text(" ms")

            page.reload()
            expect(page.locator('#sd-table-controls [name="group"]')).to_have_value("signal")
            expect(page.locator('#sd-table-controls [name="span"]')).to_have_value("all")
            expect(page.locator('#sd-latency button[data-sort="count"]')).to_contain_text("▼")
            expect(page.locator('#sd-filters [name="path"]')).to_have_value("/order/")


class WhereTheEyeIsTests(UxTestCase):
    def check_in_view(self, detail: Locator, content: str) -> None:
        """``content`` arrived in ``detail``, whose first lines are on screen, focused."""
        expect(detail.locator(content)).to_be_visible()
        seen = detail.evaluate(IN_VIEW)
        assert seen["focused"], seen
        assert 0 <= seen["top"] < seen["bottom"] - 150, seen

    def test_a_detail_opened_from_a_table_is_shown_and_focused(self) -> None:
        # Enough requests that the tables reach below the fold.
        for index in range(24):
            self.request(f"/toppings/save/?name=topping-{index}")
        with launch_browser() as browser:
            page = self.open_dashboard(browser, "/signals/#latency")
            receiver = page.locator(f'#sd-latency tr.sd-lat-row[data-name="{TOPPING_RECEIVER}"]')
            receiver.click()
            self.check_in_view(page.locator("#sd-receiver-detail"), ".sd-slowest")

            page.click('a[data-tab="requests"]')
            requests = page.locator("#sd-request-rows tr.sd-req-row")
            expect(requests).to_have_count(24)
            below = requests.nth(20)
            below.scroll_into_view_if_needed()
            request_id = below.get_attribute("data-id")
            below.click()
            detail = page.locator("#sd-request-detail")
            self.check_in_view(detail, ".sd-waterfall")
            expect(below).to_have_attribute("aria-selected", "true")

            # The open request is in the URL: a reload (or a link) opens it again.
            expect(page).to_have_url(re.compile(rf"#requests/{request_id}$"))
            page.reload()
            expect(page.locator('a[data-tab="requests"]')).to_have_attribute(
                "aria-selected", "true"
            )
            expect(detail.locator(f'.sd-waterfall-detail[data-id="{request_id}"]')).to_be_visible()
            expect(page.locator(f'#sd-request-rows tr[data-id="{request_id}"]')).to_have_class(
                re.compile(r"\bsd-selected\b")
            )
            page.keyboard.press("Escape")
            expect(detail.locator(".sd-waterfall-detail")).to_have_count(0)
            expect(page).to_have_url(re.compile(r"#requests$"))
            expect(page.locator("#sd-request-rows tr.sd-selected")).to_have_count(0)

            # A request gone from the buffer says so.
            page.goto(self.live_server_url + "/signals/#requests/999999")
            expect(detail).to_have_text("That request is no longer in the buffer.")


class RequestListTests(UxTestCase):
    def test_the_request_list_holds_its_order_under_the_pointer_and_a_selection(self) -> None:
        ids = "(rows) => rows.map((row) => row.dataset.id)"
        with launch_browser() as browser:
            page = self.open_dashboard(browser, "/signals/#requests")
            self.request("/order/?name=first")
            self.request("/order/?name=second")
            requests = page.locator("#sd-request-rows tr.sd-req-row")
            expect(requests).to_have_count(2, timeout=LIVE_WITHIN_MS * 2)
            held = page.locator("#sd-requests-held")

            requests.nth(1).hover()
            before = requests.evaluate_all(ids)
            self.request("/order/?name=third")
            expect(held).to_be_visible(timeout=LIVE_WITHIN_MS * 2)
            expect(held).to_contain_text("1 newer request is held")
            assert requests.evaluate_all(ids) == before
            page.mouse.move(1, 1)  # the pointer leaves: the newer list is shown
            expect(requests).to_have_count(3)
            expect(held).to_be_hidden()

            requests.nth(2).click()
            selected = requests.nth(2).get_attribute("data-id")
            page.mouse.move(1, 1)
            before = requests.evaluate_all(ids)
            self.request("/order/?name=fourth")
            self.request("/order/?name=fifth")
            expect(held).to_contain_text("2 newer requests are held", timeout=LIVE_WITHIN_MS * 2)
            assert requests.evaluate_all(ids) == before
            page.click("#sd-requests-show")
            expect(requests).to_have_count(5)
            expect(held).to_be_hidden()
            expect(page.locator("#sd-request-rows tr.sd-selected")).to_have_attribute(
                "data-id", selected or ""
            )
            # A filter is the person's own doing: shown at once, held list or not.
            self.filter_by(page, "path", "/nothing/")
            expect(requests).to_have_count(0)


class TaskRunTests(UxTestCase):
    def test_a_task_run_is_listed_by_kind_and_links_to_the_request_that_enqueued_it(
        self,
    ) -> None:
        from signal_dashboard.demo.pizzeria.models import Order, Pizza

        pizza = Pizza.objects.create(name="Marinara", price="8.00")
        order = Order.objects.create(pizza=pizza, quantity=1, customer_name="Barbara")
        with launch_browser() as browser:
            page = self.open_dashboard(browser, "/signals/#requests")
            assert self.request(f"/tasks/bake/{order.pk}/") == 200
            page.select_option('#sd-filters [name="kind"]', "task")
            runs = page.locator("#sd-request-rows tr.sd-req-row")
            expect(runs).to_have_count(1, timeout=LIVE_WITHIN_MS * 2)
            expect(runs.first).to_have_attribute("data-kind", "task")
            expect(runs.first).to_contain_text(f"by GET /tasks/bake/{order.pk}/")
            assert runs.locator("td").evaluate_all(MID_WORD_BREAKS) == []
            runs.first.click()
            detail = page.locator("#sd-request-detail")
            expect(detail.locator(".sd-task-facts")).to_contain_text("successful · task ")
            enqueuer = detail.locator(".sd-task-facts a")
            expect(enqueuer).to_have_text(f"GET /tasks/bake/{order.pk}/")
            enqueuer.click()
            # The request it names opens, though the list shows tasks only.
            expect(detail.locator("h2")).to_have_text(f"GET /tasks/bake/{order.pk}/")
            expect(page).to_have_url(re.compile(r"#requests/\d+$"))
            expect(detail.locator(".sd-enqueued li a").first).to_contain_text("bake_in_oven")
            expect(page.locator("#sd-request-tools")).to_be_visible()
            page.keyboard.press("Escape")
            expect(page.locator("#sd-request-tools")).to_be_hidden()


class PageTests(UxTestCase):
    def test_the_favicon_and_titles_say_what_is_shown(self) -> None:
        with launch_browser() as browser:
            page = self.open_dashboard(browser)
            icon = page.locator('link[rel="icon"]').get_attribute("href")
            assert icon is not None
            assert icon.endswith(".svg")
            assert page.request.get(self.live_server_url + icon).status == 200
            expect(page).to_have_title("Stream · Signal dashboard")
            page.click('a[data-tab="latency"]')
            expect(page).to_have_title("Latency · Signal dashboard")
            self.filter_by(page, "sender", "Topping")
            expect(page).to_have_title("Latency · sender=Topping · Signal dashboard")


class RecordingTests(UxTestCase):
    def test_staff_stop_recording_for_everyone_and_pause_stays_per_page(self) -> None:
        with launch_browser() as browser:
            page = self.open_dashboard(browser)
            toggle = page.locator("#sd-recording-toggle")
            expect(toggle).to_have_text("Stop recording")
            try:
                toggle.click()
                expect(toggle).to_have_text("Start recording")
                state = page.locator("#sd-recording-state")
                expect(state).to_contain_text(re.compile(r"recording stopped by staff at \S+ UTC"))
                self.request("/toppings/save/?name=unrecorded")
                other = self.open_dashboard(browser)  # another user's page says so too
                expect(other.locator("#sd-recording-state")).to_contain_text("recording stopped")
                expect(other.locator(f"#sd-rows {TOPPING_SAVES}")).to_have_count(0)
                toggle.click()
                expect(toggle).to_have_text("Stop recording")
                expect(state).not_to_contain_text("stopped")
                self.request("/toppings/save/?name=recorded")
                expect(page.locator(f"#sd-rows {TOPPING_SAVES}")).to_have_count(
                    1, timeout=LIVE_WITHIN_MS
                )
            finally:
                page.request.post(
                    self.live_server_url + "/signals/recording/",
                    form={"on": "true"},
                    headers={
                        "X-CSRFToken": page.evaluate(
                            "document.querySelector('[name=csrfmiddlewaretoken]').value"
                        )
                    },
                )


class HygieneTests(UxTestCase):
    def test_lost_and_run_time_receivers_show_in_the_stream_and_the_registry(self) -> None:
        with launch_browser() as browser:
            page = self.open_dashboard(browser)
            self.request("/lose/")
            self.request("/connect/")
            lost = page.locator(
                "#sd-rows tr.sd-finding",
                has_text="Receiver lost: lose_a_receiver.forgotten_receiver",
            )
            expect(lost).to_have_count(1, timeout=LIVE_WITHIN_MS)
            connected = page.locator("#sd-rows tr", has_text="Receiver connected at run time")
            expect(connected.filter(has_text="on_every_order")).to_have_count(1)
            lost.click()
            detail = page.locator("#sd-detail")
            expect(detail).to_contain_text("tests.urls.lose_a_receiver.<locals>.forgotten_receiver")
            expect(detail).to_contain_text("weak=False")
            page.goto(self.live_server_url + "/signals/registry/")
            section = page.locator("section.sd-lost")
            expect(section).to_contain_text("forgotten_receiver")
            expect(section).to_contain_text("tests/urls.py:")
            expect(page.locator("section.sd-runtime-connects")).to_contain_text(
                "tests.urls.pizza_ordered"
            )


class HygieneDoubledTests(UxTestCase):
    def test_doubled_receivers_and_missed_disconnects_show_with_their_locations(self) -> None:
        with launch_browser() as browser:
            page = self.open_dashboard(browser)
            self.request("/double/")
            self.request("/miss/")
            doubled = page.locator("#sd-rows tr.sd-finding", has_text="Receiver doubled")
            expect(doubled).to_have_count(1, timeout=LIVE_WITHIN_MS)
            missed = page.locator("#sd-rows tr.sd-finding", has_text="removed nothing")
            expect(missed).to_have_count(1)
            doubled.click()
            detail = page.locator("#sd-detail")
            expect(detail).to_contain_text("tests/doubled_receiver.py:13")
            expect(detail).to_contain_text("tests/urls.py:")
            expect(detail).to_contain_text("dispatch_uid")
            page.goto(self.live_server_url + "/signals/registry/")
            section = page.locator("section.sd-doubled")
            expect(section).to_contain_text("tests.doubled_receiver.open_windows")
            expect(section).to_contain_text("runs 2 times per send from")
            expect(section).to_contain_text("connected at ")
            expect(section).to_contain_text("tests/urls.py:")
            expect(page.locator("section.sd-missed")).to_contain_text(
                "dispatch_uid='not-connected'"
            )


@pytest.mark.redis
def test_with_redis_another_process_send_is_detailed_and_exported_as_shown(
    project_db: Any, redis_server: Any
) -> None:
    from tests.processes import DaphneServer, run_command, session_cookie
    from tests.test_transport import SEND_WITH_NESTED_SENDS

    session = session_cookie(project_db, redis_server.url, "staff", "pw")
    with (
        DaphneServer(project_db, redis_server.url, "application_with_static") as server,
        launch_browser() as browser,
    ):
        page = browser.new_page(viewport=LAPTOP)
        page.context.add_cookies([{"name": "sessionid", "value": session, "url": server.url}])
        page.goto(server.url + "/signals/")
        expect(page.locator("#sd-status")).to_have_text(re.compile(r"\bconnected\b"))
        command = run_command(["shell", "-c", SEND_WITH_NESTED_SENDS], project_db, redis_server.url)
        assert command.returncode == 0, command.stderr
        # The send (the command's connect() is a signal-hygiene finding, a row of its own).
        ordered = page.locator(
            '#sd-rows tr:not(.sd-finding)[data-signal="tests.urls.pizza_ordered"]'
        )
        expect(ordered).to_have_count(1, timeout=15_000)  # from the other process, via Redis
        ordered.click()
        nested = page.locator("#sd-detail h3:text('Nested sends') + ul a")
        expect(nested.first).to_contain_text("signals.post_save")
        nested.first.click()
        expect(page.locator("#sd-detail h2")).to_contain_text("post_save")
        expect(page.locator("#sd-detail")).to_contain_text("Sent inside")
        # The download lists what the page lists: the other process's send included.
        shown = page.locator("#sd-rows tr").evaluate_all("(rows) => rows.map((r) => r.dataset.id)")
        href = page.locator("#sd-download-events").get_attribute("href") or ""
        lines = page.request.get(server.url + href).text().splitlines()
        exported = [json.loads(line)["id"] for line in lines]
        assert set(shown) <= set(exported)
        assert ordered.get_attribute("data-id") in exported


def status_text(page: Page) -> str:
    """The status line as a person reads it (white space folded)."""
    return " ".join(page.locator(".sd-status").inner_text().split())
