"""Headless Chromium: a re-offered consult leaves the coordinator's escalated list and reaches
the specialist's dashboard with its deadline, both without a reload."""

from __future__ import annotations

from datetime import timedelta

import pytest

from telehealth import clock
from telehealth.accounts.models import Role
from telehealth.extensions import db
from telehealth.roster.models import LeavePeriod
from telehealth.roster.services import remove_leave
from tests.conftest import screenshot, sign_in

pytestmark = pytest.mark.browser


def _login(context, live_server, user):
    page = context.new_page()
    sign_in(page, live_server, user.email)
    page.wait_for_selector("html[data-live=connected]", state="attached")
    page.evaluate("() => { window.notReloaded = true; }")
    return page


def test_reoffer_clears_the_escalation_and_shows_the_deadline_live(
        live_server, browser, world, make_user, make_consult):
    coordinator = world["coordinator"]
    neurologist = make_user(Role.SPECIALIST, specialties=("neurology",))
    leave = LeavePeriod(user_id=neurologist.id, starts_at=clock.now() - timedelta(days=1),
                        ends_at=clock.now() + timedelta(days=3), reason="conference")
    db.session.add(leave)
    db.session.commit()
    consult = make_consult(world["clinician"], specialty="neurology")
    coordinator_context, specialist_context = browser.new_context(), browser.new_context()
    try:
        coordinator_page = _login(coordinator_context, live_server, coordinator)
        item = f'#escalated-list [data-consult="{consult.id}"]'
        assert coordinator_page.is_visible(item)
        specialist_page = _login(specialist_context, live_server, neurologist)
        specialist_page.wait_for_selector("#no-offers")

        remove_leave(leave.id, coordinator)  # back early: offered at once
        db.session.commit()

        card = specialist_page.wait_for_selector(f'#offers [data-consult="{consult.id}"]',
                                                 timeout=10_000)
        assert "answer by" in card.inner_text()
        coordinator_page.wait_for_selector(item, state="detached", timeout=10_000)
        assert coordinator_page.is_hidden("#escalations")
        assert coordinator_page.is_visible("#live-notice")
        for page in (coordinator_page, specialist_page):
            assert page.evaluate("() => window.notReloaded") is True
        screenshot(coordinator_page, "reoffer-coordinator")
        screenshot(specialist_page, "reoffer-specialist")
    finally:
        coordinator_context.close()
        specialist_context.close()
