"""Headless Chromium: the coordinator pages through the escalation queue and filters it by
specialty; a specialist who loses the race for an emergency is told someone took it."""

from __future__ import annotations

import pytest
from sqlalchemy import insert

from telehealth import clock
from telehealth.accounts.models import Role
from telehealth.consults.models import Consult, ConsultMode, ConsultStatus, Sex, Urgency
from telehealth.extensions import db
from telehealth.matching.models import Offer, OfferStatus
from tests.conftest import screenshot, sign_in, take_consult

pytestmark = pytest.mark.browser


def _escalated(clinician, specialty, count: int) -> None:
    now = clock.now()
    db.session.execute(insert(Consult), [{
        "clinic_id": clinician.clinic_id, "created_by_id": clinician.id,
        "status": ConsultStatus.ESCALATED, "patient_ref": f"E-{specialty.code}-{n}",
        "patient_sex": Sex.FEMALE, "presenting_problem": "-", "question": "-",
        "specialty_id": specialty.id, "urgency": Urgency.ROUTINE, "mode": ConsultMode.WRITTEN,
        "languages": "fr", "created_at": now, "updated_at": now, "submitted_at": now}
        for n in range(count)])
    db.session.commit()


def test_coordinator_pages_through_escalations_and_filters_by_specialty(
        live_server, browser, world, make_specialty):
    neurology, dermatology = make_specialty("neurology"), make_specialty("dermatology")
    _escalated(world["clinician"], neurology, 30)
    _escalated(world["clinician"], dermatology, 25)
    context = browser.new_context()
    try:
        page = context.new_page()
        sign_in(page, live_server, world["coordinator"].email)
        page.click("#escalation-queue-link")
        rows = "#escalation-queue tr[data-consult]"
        page.wait_for_selector(rows)
        assert page.locator(rows).count() == 25  # the default page size
        first_page = set(page.locator(rows).evaluate_all(
            "rows => rows.map(r => r.dataset.consult)"))
        page.click("a.next-page")
        page.wait_for_selector("a.first-page")
        second_page = set(page.locator(rows).evaluate_all(
            "rows => rows.map(r => r.dataset.consult)"))
        assert len(second_page) == 25 and not first_page & second_page
        page.click("a.next-page")
        page.wait_for_function("document.querySelectorAll('#escalation-queue tr[data-consult]')"
                               ".length === 5")
        assert page.locator("a.next-page").count() == 0  # the last page

        page.select_option("#escalation-filters select[name=specialty]", str(neurology.id))
        page.click("#escalation-filters button[type=submit]")
        page.wait_for_url(f"**/escalations?specialty={neurology.id}")
        page.click("a.next-page")
        page.wait_for_function("document.querySelectorAll('#escalation-queue tr[data-consult]')"
                               ".length === 5")
        assert set(page.locator(f"{rows} td:nth-child(2)").all_inner_texts()) == {
            neurology.name}
        screenshot(page, "escalations-neurology")
    finally:
        context.close()


def test_the_specialist_who_lost_the_race_is_told_it_was_taken(
        live_server, browser, world, make_user, make_consult):
    winner = world["specialist"]
    loser = make_user(Role.SPECIALIST)
    consult = make_consult(world["clinician"], urgency=Urgency.EMERGENCY)
    for person in (winner, loser):  # the emergency went to several at once
        if not db.session.query(Offer).filter_by(consult_id=consult.id,
                                                 specialist_id=person.id).count():
            db.session.add(Offer(consult_id=consult.id, specialist_id=person.id,
                                 status=OfferStatus.PENDING))
    db.session.commit()
    context = browser.new_context()
    try:
        page = context.new_page()
        sign_in(page, live_server, loser.email)
        page.goto(f"{live_server}/consults/{consult.id}")
        page.wait_for_selector("#accept")
        take_consult(consult, winner)  # a moment earlier, elsewhere
        db.session.commit()
        page.click("#accept")
        page.wait_for_url(f"{live_server}/")
        notice = page.locator(".flash-error")
        assert "already been taken" in notice.inner_text()
        assert page.locator(f'#offers [data-consult="{consult.id}"]').count() == 0
        screenshot(page, "race-lost")
    finally:
        context.close()
