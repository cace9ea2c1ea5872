"""Acceptance 3: an outbreak of bloody diarrhoea in one district, from data to bulletin."""

from __future__ import annotations

import time
from email.header import decode_header, make_header

from flask_babel import force_locale
from flask_babel import gettext as _

from telehealth.extensions import db
from telehealth.surveillance import services
from tests.conftest import screenshot, sign_in
from tests.notifications.test_notifications import smtp_server  # noqa: F401 - a fixture
from tests.surveillance.conftest import weeks_ago


def test_district_officer_gets_verifies_and_bulletins_an_outbreak(
        live_server, browser, surv, coded, smtp_server) -> None:  # noqa: F811
    officer = surv["officer"]  # French, Kinshasa time; here responsible for all Nord-Kivu
    services.assign_officer(officer, surv["kivu"])
    db.session.commit()
    first, second, third = surv["clinicians"]  # three clinics of Goma district
    coded(first, ["A039"], seen_at=weeks_ago(1), patient_age_years=4)
    page = browser.new_page()
    sign_in(page, live_server, officer.email)
    page.goto(f"{live_server}/surveillance")
    page.wait_for_selector("html[data-live=connected]", state="attached")
    for clinician in (first, second, third):
        coded(clinician, ["A039"], patient_age_years=6)
    # The detection job (the lead wires run_detection() to the job runner) runs after the data.
    opened = services.run_detection()
    db.session.commit()
    alert = next(a for a in opened if a.area_id == surv["goma"].id)

    # Live: the alert appears in the officer's list without a reload.
    page.wait_for_selector(f'#alerts li[data-alert="{alert.id}"]', timeout=15_000)
    screenshot(page, "surveillance-1-alert-live")
    # By e-mail, in French (the reader's language).
    # (The consults were offered to specialists by e-mail too, and Nord-Kivu has its own
    # alert, one level up.)
    def officer_mail() -> list:
        return [m for r, m in smtp_server.messages
                if r == [officer.email] and alert.reference in m["Subject"]]

    deadline = time.monotonic() + 15
    while not officer_mail():
        assert time.monotonic() < deadline, "no e-mail reached the officer"
        time.sleep(0.2)
    [message] = officer_mail()
    with force_locale("fr"):
        subject = _("Alert %(ref)s: %(syndrome)s in %(area)s", ref=alert.reference,
                    syndrome=services.syndrome_label(alert.syndrome), area="Goma")
    # The header is MIME-encoded (non-ASCII French): compare what a mail reader shows.
    assert str(make_header(decode_header(message["Subject"]))) == subject

    # Verification: the officer starts a risk assessment.
    page.click(f'#alerts li[data-alert="{alert.id}"] a')
    page.wait_for_selector("#line-list")
    assert page.locator("#line-list tbody tr").count() == 3
    screenshot(page, "surveillance-2-alert-evidence")
    page.select_option("#move select[name=stage]", "risk_assessment")
    page.fill("#move textarea[name=note]", "Trois centres, même semaine : évaluation lancée.")
    page.click("#move button[type=submit]")
    page.wait_for_selector('#alert-stage[data-stage="risk_assessment"]')
    screenshot(page, "surveillance-3-risk-assessment")

    # The bulletin of Nord-Kivu shows the alert and Goma shaded on the map.
    page.goto(f"{live_server}/surveillance/bulletin/{surv['kivu'].id}")
    assert page.locator(f'#bulletin-alerts tr[data-alert="{alert.id}"]').count() == 1
    assert page.locator('#bulletin-map path[data-area="CD-NK-GOMA"]').get_attribute(
        "data-alert") == "yes"
    assert page.locator('#bulletin-map path[data-area="CD-NK-BENI"]').get_attribute(
        "data-alert") == "no"
    screenshot(page, "surveillance-4-bulletin")
    db.session.expire_all()
    assert db.session.get(type(alert), alert.id).verified_at is not None
