"""Headless Chromium: a specialist's dashboard shows a new offer without a reload."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from telehealth.extensions import socketio
from tests.conftest import ARTIFACTS, PASSWORD, need_service

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture()
def live_server(app) -> Iterator[str]:
    # Flask-SocketIO's test client patches the shared Socket.IO server so packets go to
    # test queues; undo that, or a real browser never hears back.
    sio_server = socketio.server
    for name in ("_send_packet", "_send_eio_packet"):
        sio_server.__dict__.pop(name, None)
    sio_server.async_handlers = sio_server.eio.async_handlers = True
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_specialist_dashboard_shows_new_offer_live(live_server, world, make_consult):
    import os

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need_service("Playwright", "the playwright package is not installed")
    if not os.path.exists(CHROMIUM):
        need_service("Chromium", f"{CHROMIUM} is missing")
    specialist = world["specialist"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{live_server}/login")
            page.fill("input[name=email]", specialist.email)
            page.fill("input[name=password]", PASSWORD)
            page.click("main form button, main form input[type=submit]")
            page.wait_for_selector("#no-offers")
            # Wait until the page's socket has joined the room, then offer a consult.
            page.wait_for_selector("html[data-live=connected]", state="attached")
            page.evaluate("() => { window.notReloaded = true; }")
            consult = make_consult(world["clinician"])
            card = page.wait_for_selector(f'#offers [data-consult="{consult.id}"]',
                                          timeout=10_000)
            assert consult.reference in card.inner_text()
            assert page.evaluate("() => window.notReloaded") is True
            assert page.is_visible("#live-notice")
            ARTIFACTS.joinpath("screenshots").mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "screenshots" / "live-offer.png"),
                            full_page=True)
        finally:
            browser.close()
