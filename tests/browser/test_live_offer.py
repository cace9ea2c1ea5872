"""Headless Chromium: a specialist's dashboard shows a new offer without a reload."""

from __future__ import annotations

import pytest

from tests.conftest import screenshot, sign_in

pytestmark = pytest.mark.browser


def test_specialist_dashboard_shows_new_offer_live(live_server, browser, world, make_consult):
    specialist = world["specialist"]
    context = browser.new_context()
    try:
        page = context.new_page()
        sign_in(page, live_server, specialist.email)
        page.wait_for_selector("#no-offers")
        # Wait until the page's socket has joined the room, then offer a consult.
        page.wait_for_selector("html[data-live=connected]", state="attached")
        page.evaluate("() => { window.notReloaded = true; }")
        consult = make_consult(world["clinician"])
        card = page.wait_for_selector(f'#offers [data-consult="{consult.id}"]', timeout=10_000)
        assert consult.reference in card.inner_text()
        assert page.evaluate("() => window.notReloaded") is True
        assert page.is_visible("#live-notice")
        screenshot(page, "live-offer")
    finally:
        context.close()
