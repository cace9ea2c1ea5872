"""The consult story in a real browser, as a clinician and a specialist would live it."""

from __future__ import annotations

import pytest

from telehealth.consults.models import Consult, ConsultStatus
from telehealth.extensions import db
from tests.conftest import image_bytes, screenshot, sign_in

pytestmark = pytest.mark.browser


def test_clinician_asks_specialist_answers_clinician_closes(
    live_server, browser, world, tmp_path
):
    photo = tmp_path / "rash.jpg"
    photo.write_bytes(image_bytes(size=(320, 240)))
    clinician_ctx = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    specialist_ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    clinician = clinician_ctx.new_page()
    specialist = specialist_ctx.new_page()

    clinician.goto(f"{live_server}/login")
    screenshot(clinician, "01-sign-in")
    sign_in(clinician, live_server, world["clinician"].email)
    clinician.click("text=Ask for a consult")
    clinician.fill("#patient_ref", "GOMA-0042")
    clinician.fill("#patient_age_years", "6")
    clinician.select_option("#patient_sex", "female")
    clinician.fill("#presenting_problem", "Fever for 5 days, then a red rash from the face down.")
    clinician.fill("#question", "Is this measles? What should we give while we wait?")
    clinician.select_option("#specialty", label=world["specialist"].specialties[0].name)
    clinician.check("input[name=urgency][value=urgent]")
    clinician.set_input_files("#attachments", str(photo))
    screenshot(clinician, "02-new-consult")
    clinician.click("#submit")
    clinician.wait_for_selector("text=The consult has been sent to specialists.")
    assert clinician.locator("img.thumb").count() == 1
    consult_url = clinician.url
    screenshot(clinician, "03-consult-sent")

    sign_in(specialist, live_server, world["specialist"].email)
    specialist.wait_for_selector("#offers article")
    screenshot(specialist, "04-specialist-dashboard-offer")
    specialist.click("#offers article a")
    specialist.click("#accept")
    specialist.wait_for_selector("text=You have taken this consult.")
    specialist.fill("#body", "This is measles. Give vitamin A today and tomorrow; isolate.")
    specialist.check("#answer")
    specialist.click("#note-form input[type=submit]")
    specialist.wait_for_selector("text=Your note is saved.")
    screenshot(specialist, "05-specialist-answered")

    clinician.goto(consult_url)
    assert "This is measles." in clinician.inner_text("#notes")
    clinician.select_option("#outcome", "treated_locally")
    clinician.fill("#outcome_note", "Recovered after a week at home.")
    clinician.select_option("#rating", "5")
    screenshot(clinician, "06-clinician-reads-answer")
    clinician.click("#close input[type=submit]")
    clinician.wait_for_selector("#outcome")
    screenshot(clinician, "07-consult-closed")

    specialist.goto(consult_url)
    outcome = specialist.inner_text("#outcome")
    assert "treated locally" in outcome and "Recovered after a week at home." in outcome
    screenshot(specialist, "08-specialist-sees-outcome")
    specialist.goto(f"{live_server}/")
    assert "closed" in specialist.inner_text("main")

    db.session.expire_all()
    consult = db.session.scalars(db.select(Consult)).one()
    assert consult.status == ConsultStatus.CLOSED and consult.rating == 5
    clinician_ctx.close()
    specialist_ctx.close()


def test_admin_pages_render(live_server, browser, world):
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, live_server, world["admin"].email)
    page.goto(f"{live_server}/admin/users")
    assert world["clinician"].email in page.inner_text("main")
    screenshot(page, "09-admin-users")
    page.goto(f"{live_server}/admin/clinics")
    screenshot(page, "10-admin-clinics")
    context.close()
