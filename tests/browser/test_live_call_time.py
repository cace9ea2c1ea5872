"""Headless Chromium: a clinician sees a proposed call time live, in their zone and language."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from telehealth import clock
from telehealth.extensions import db
from telehealth.video.services import propose_time
from tests.conftest import screenshot, sign_in, take_consult

pytestmark = pytest.mark.browser


def test_clinician_sees_a_proposed_call_time_without_a_reload(live_server, browser, world,
                                                              make_consult):
    clinician, specialist = world["clinician"], world["specialist"]
    clinician.locale, clinician.timezone = "fr", "Africa/Kinshasa"
    consult = make_consult(clinician)
    take_consult(consult, specialist)
    db.session.commit()
    context = browser.new_context()
    try:
        page = context.new_page()
        sign_in(page, live_server, clinician.email)
        page.wait_for_selector("html[data-live=connected]", state="attached")
        page.evaluate("() => { window.notReloaded = true; }")
        clock.freeze(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
        propose_time(consult, specialist, datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
        db.session.commit()
        page.wait_for_selector("#live-notice:not([hidden])", timeout=10_000)
        notice = page.inner_text("#live-notice")
        assert consult.reference in notice
        assert "mardi 1 décembre 2026, 09:00 (Kinshasa)" in notice
        assert page.get_attribute("#live-notice a", "href") == f"/consults/{consult.id}#call"
        assert page.evaluate("() => window.notReloaded") is True
        screenshot(page, "live-call-time")
    finally:
        context.close()
