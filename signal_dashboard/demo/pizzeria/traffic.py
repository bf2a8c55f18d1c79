"""Real HTTP traffic for the demo: a client that presses the home page's buttons at random.

Stdlib only (urllib with a cookie jar, so CSRF and logins work as in a browser), and loopback only.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
REQUEST_TIMEOUT = 10.0
MIN_PAUSE = 0.2
MAX_PAUSE = 1.0

# The home page's buttons, told apart by their form's action URL, and how often to press each.
ACTIONS: dict[str, tuple[re.Pattern[str], int]] = {
    "create_pizza": (re.compile(r"/pizzas/new/$"), 3),
    "place_order": (re.compile(r"/pizzas/\d+/order/$"), 4),
    "bake": (re.compile(r"/orders/\d+/bake/$"), 3),
    "bake_later": (re.compile(r"/orders/\d+/bake-later/$"), 2),
    "deliver": (re.compile(r"/orders/\d+/deliver/$"), 2),
    "delete_order": (re.compile(r"/orders/\d+/delete/$"), 1),
    "log_in": (re.compile(r"/login/$"), 1),
    "log_out": (re.compile(r"/logout/$"), 1),
    "failed_login": (re.compile(r"/login/fail/$"), 1),
    "bake_batch": (re.compile(r"/traffic/bake-batch/$"), 1),
}

_FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')
_CSRF_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass
class TrafficStats:
    requests: int = 0
    failed: int = 0
    actions: Counter[str] = field(default_factory=Counter)


class _KeepRedirects(urllib.request.HTTPErrorProcessor):
    """Hand 3xx responses back as they are: one button press is one request."""

    def http_response(
        self, request: urllib.request.Request, response: http.client.HTTPResponse
    ) -> http.client.HTTPResponse:
        if 300 <= response.status < 400:
            return response
        return super().http_response(request, response)


class TrafficGenerator:
    """Browses the demo shop at ``base_url`` with one session, the way a person would."""

    def __init__(self, base_url: str, *, rng: random.Random | None = None) -> None:
        if urllib.parse.urlsplit(base_url).hostname not in LOOPBACK_HOSTS:
            raise ValueError(f"traffic only goes to this machine, not to {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.rng = rng or random.Random()
        self.stats = TrafficStats()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _KeepRedirects()
        )

    def step(self, action: str | None = None) -> str | None:
        """Load the home page and press one of its buttons: ``action``, or a random one.

        Return the action pressed, or None if the home page did not load.
        """
        page = self._request("/")
        if page is None:
            return None
        form_urls = _FORM_ACTION.findall(page)
        buttons = {
            name: urls
            for name, (pattern, _) in ACTIONS.items()
            if (urls := [url for url in form_urls if pattern.search(url)])
        }
        if action is None:
            names = list(buttons)
            action = self.rng.choices(names, weights=[ACTIONS[name][1] for name in names])[0]
        elif action not in buttons:
            raise ValueError(f"the home page has no {action!r} button")
        token = _CSRF_TOKEN.search(page)
        form = {"csrfmiddlewaretoken": token.group(1) if token else ""}
        self._request(self.rng.choice(buttons[action]), form)
        self.stats.actions[action] += 1
        return action

    def run(
        self, duration: float | None = None, *, keep_going: Callable[[], bool] = lambda: True
    ) -> TrafficStats:
        """Press a random button every MIN_PAUSE to MAX_PAUSE seconds, for ``duration`` seconds.

        Without a duration, run until ``keep_going()`` is false or the user presses Ctrl-C.
        """
        deadline = None if duration is None else time.monotonic() + duration
        while keep_going():
            self.step()
            pause = self.rng.uniform(MIN_PAUSE, MAX_PAUSE)
            if deadline is not None:
                pause = min(pause, deadline - time.monotonic())
                if pause <= 0:
                    break
            time.sleep(pause)
        return self.stats

    def _request(self, path: str, form: dict[str, str] | None = None) -> str | None:
        """GET ``path``, or POST ``form`` to it; return the body, or None if it failed."""
        data = None if form is None else urllib.parse.urlencode(form).encode()
        self.stats.requests += 1
        try:
            with self._opener.open(self.base_url + path, data, REQUEST_TIMEOUT) as response:
                return response.read().decode()
        except urllib.error.HTTPError as error:  # a 4xx or 5xx answer
            error.close()
        except (OSError, http.client.HTTPException):  # no answer at all
            pass
        self.stats.failed += 1
        return None
