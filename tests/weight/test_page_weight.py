"""Chromium on a 256 kbps budget: every page each role links to costs at most 40 KB on a cold
cache and 8 KB on a warm reload, and nothing scrolls sideways at 375 px, in English and Arabic.

Transferred bytes are Chromium's own count (CDP Network.loadingFinished encodedDataLength:
headers and compressed bodies, what the link carries).
"""

from __future__ import annotations

from typing import Any

import pytest

from telehealth.extensions import db
from tests.conftest import screenshot, sign_in
from tests.weight.demo import DEMO_ROLES, seed_world, user, walk

COLD_LIMIT = 40 * 1024
WARM_LIMIT = 8 * 1024
PHONE = {"width": 375, "height": 667}


CALL_TRAFFIC = ("/socket.io/", "/call/where", "/api/session/alive")


class Meter:
    """Bytes a page transferred, counted by Chromium. A call page's signaling (Socket.IO
    long-polling, asking where the call lives, keeping the session alive) is the call's
    traffic, not the page's, and is left out."""

    def __init__(self, context: Any, page: Any) -> None:
        self.cdp = context.new_cdp_session(page)
        self.cdp.send("Network.enable")
        self.bytes = 0
        self.urls: dict[str, str] = {}
        self.cdp.on("Network.requestWillBeSent", self._sent)
        self.cdp.on("Network.loadingFinished", self._finished)

    def _sent(self, event: dict[str, Any]) -> None:
        self.urls[event["requestId"]] = event["request"]["url"]

    def _finished(self, event: dict[str, Any]) -> None:
        url = self.urls.get(event["requestId"], "")
        if not any(part in url for part in CALL_TRAFFIC):
            self.bytes += int(event.get("encodedDataLength", 0))

    def measure(self, load: Any) -> int:
        self.bytes = 0
        load()
        return self.bytes


def _open(page: Any, url: str) -> tuple[int, str]:
    response = page.goto(url, wait_until="networkidle")
    return (response.status if response else 0), page.content()


def _sideways(page: Any) -> int:
    """How many pixels the page is wider than the viewport (0: no sideways scrolling)."""
    return int(page.evaluate(
        "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - window.innerWidth"))


@pytest.fixture()
def demo(app: Any) -> dict[str, Any]:
    return seed_world()


@pytest.mark.parametrize("role", list(DEMO_ROLES))
def test_every_page_is_light_and_fits_a_phone(live_server, browser, demo, role):
    context = browser.new_context(viewport=PHONE)
    too_heavy, too_wide = [], []
    try:
        page = context.new_page()
        sign_in(page, live_server, DEMO_ROLES[role], "telehealth-demo")
        meter = Meter(context, page)
        weights: dict[str, tuple[int, int]] = {}

        def visit(path: str) -> tuple[int, str]:
            meter.cdp.send("Network.clearBrowserCache")
            status_html: list[tuple[int, str]] = []
            cold = meter.measure(lambda: status_html.append(_open(page, live_server + path)))
            warm = meter.measure(lambda: page.reload(wait_until="networkidle"))
            weights[path] = (cold, warm)
            if cold > COLD_LIMIT or warm > WARM_LIMIT:
                too_heavy.append((path, cold, warm))
            if _sideways(page) > 0:
                too_wide.append(("en", path, _sideways(page)))
                screenshot(page, f"wide-{role}-en-{path.strip('/').replace('/', '-')}")
            return status_html[0]

        # The consult with the photo first: the heaviest consult page.
        visited = walk(visit, start=("/", f"/consults/{demo['taken'].id}"))
        assert len(visited) >= 4, visited
        assert all(status < 400 for status in visited.values()), visited
        print(f"\n{role}: " + ", ".join(f"{p} {c / 1024:.1f}/{w / 1024:.1f} KB"
                                        for p, (c, w) in weights.items()))
        # The same pages in Arabic (right to left, longer words).
        person = user(DEMO_ROLES[role])
        person.locale = "ar"
        db.session.commit()
        for path in visited:
            _open(page, live_server + path)
            if _sideways(page) > 0:
                too_wide.append(("ar", path, _sideways(page)))
                screenshot(page, f"wide-{role}-ar-{path.strip('/').replace('/', '-')}")
    finally:
        context.close()
    assert (too_heavy, too_wide) == ([], []), "cold > 40 KB or warm > 8 KB; wider than 375 px"


def test_the_sign_in_page_is_light_and_fits_a_phone(live_server, browser):
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        meter = Meter(context, page)
        for language in ("en", "ar"):
            context.set_extra_http_headers({"Accept-Language": language})
            meter.cdp.send("Network.clearBrowserCache")
            cold = meter.measure(lambda: _open(page, f"{live_server}/login"))
            warm = meter.measure(lambda: page.reload(wait_until="networkidle"))
            assert cold <= COLD_LIMIT and warm <= WARM_LIMIT, (language, cold, warm)
            assert _sideways(page) == 0, language
            assert page.get_attribute("html", "lang") == language
    finally:
        context.close()
