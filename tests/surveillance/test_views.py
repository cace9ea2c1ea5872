"""Acceptance 5 through the pages: bad input gets a clear 4xx and nothing is saved half."""

from __future__ import annotations

from datetime import timedelta

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, select

from telehealth import clock
from telehealth.extensions import db
from telehealth.surveillance import services
from telehealth.surveillance.models import Alert, AlertStage, Syndrome, WeeklyReport
from tests.surveillance.test_access import client_for


def test_weekly_report_form(app, surv) -> None:
    client = client_for(app, surv["clinician"])
    assert "cases-" in client.get("/surveillance/weekly-report").get_data(as_text=True)
    this_week = services.week_start(clock.now().date(), "iso")
    zeros = {f"cases-{s.id}": "0" for s in services.active_syndromes()}

    def send(week_start, **changes: str):
        return client.post("/surveillance/weekly-report", data={
            **zeros, "week": services.week_label(week_start, "iso"), **changes})

    assert send(this_week - timedelta(weeks=1)).status_code == 302
    again = send(this_week - timedelta(weeks=1))
    assert again.status_code == 409 and "sent already" in again.get_data(as_text=True)
    future = send(this_week + timedelta(weeks=2))
    assert future.status_code == 400 and "has not begun" in future.get_data(as_text=True)
    bad = send(this_week - timedelta(weeks=2), **{f"cases-{surv['syndromes']['awd'].id}": "x"})
    assert bad.status_code == 400 and "number of cases" in bad.get_data(as_text=True)
    assert db.session.scalar(select(func.count(WeeklyReport.id))) == 1
    # Another clinic's officer or a specialist cannot send one.
    assert client_for(app, surv["specialist"]).post("/surveillance/weekly-report",
                                                     data=zeros).status_code == 403


def test_a_refused_weekly_report_comes_back_as_typed(app, surv) -> None:
    """A bad week or count shows the form again with the reason and every figure typed, not
    an error page that loses the report (found walking the demo as a clinician)."""
    client = client_for(app, surv["clinician"])
    awd, other = (s.id for s in services.active_syndromes()[:2])
    for week, count in (("", "7"), ("last week", "7"), ("2026-W10", "seven")):
        page = client.post("/surveillance/weekly-report", data={
            "week": week, f"cases-{awd}": count, f"cases-{other}": "12"})
        html = page.get_data(as_text=True)
        assert page.status_code == 400, (week, count)
        assert 'id="weekly-report"' in html and 'class="flash flash-error"' in html
        assert f'name="cases-{awd}" type="number" min="0" value="{count}"' in html
        assert f'name="cases-{other}" type="number" min="0" value="12"' in html
        assert f'name="week" value="{week}"' in html
        assert f'<label for="cases-{awd}">' in html  # each field under its own label
    assert db.session.scalar(select(func.count(WeeklyReport.id))) == 0


def test_syndromes_page_refuses_codes_that_map_to_nothing(app, surv) -> None:
    admin = client_for(app, surv["admin"])
    before = db.session.scalar(select(func.count(Syndrome.id)))
    response = admin.post("/surveillance/syndromes", data={
        "code": "plague", "name": "Plague", "codes": "A20, U50", "detector": "fixed",
        "threshold": "1", "active": "1"})
    assert response.status_code == 400 and "U50 matches no ICD-10 code" in \
        response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Syndrome.id))) == before
    assert admin.post("/surveillance/syndromes", data={
        "code": "plague", "name": "Plague", "codes": "A20", "detector": "fixed",
        "threshold": "1", "active": "1"}).status_code == 302


def test_alert_workflow_pages_refuse_bad_steps(app, surv, coded) -> None:
    coded(surv["clinician"], ["A98"])
    [alert] = [a for a in services.run_detection() if a.area_id == surv["goma"].id]
    db.session.commit()
    officer = client_for(app, surv["officer"])
    url = f"/surveillance/alerts/{alert.id}/move"
    assert officer.post(url, data={"stage": "nonsense"}).status_code == 400
    assert officer.post(url, data={"stage": "closed"}).status_code == 409
    assert officer.post(url, data={"stage": "risk_assessment",
                                   "note": "Cas confirmé."}).status_code == 302
    assert officer.post(url, data={"stage": "characterisation", "likelihood": "high",
                                   "consequence": "3"}).status_code == 400
    assert officer.post(url, data={"stage": "characterisation", "likelihood": "4",
                                   "consequence": "3"}).status_code == 302
    assert officer.post(f"/surveillance/alerts/{alert.id}/notes",
                        data={"body": ""}).status_code == 400
    db.session.expire_all()
    assert db.session.get(Alert, alert.id).stage == AlertStage.CHARACTERISATION
    page = officer.get(f"/surveillance/alerts/{alert.id}").get_data(as_text=True)
    with force_locale(surv["officer"].locale or "en"):  # the officer's language
        high_risk = str(_("High risk"))
    assert "Cas confirmé." in page and high_risk in page


def test_an_alert_past_its_verification_deadline_shows_overdue(app, surv, coded) -> None:
    coded(surv["clinician"], ["A98"])
    services.run_detection()
    db.session.commit()
    officer = client_for(app, surv["officer"])
    assert "overdue" not in officer.get("/surveillance").get_data(as_text=True)
    clock.freeze(clock.now() + timedelta(hours=25))
    officer = client_for(app, surv["officer"])  # signed in afresh: a day idle signs one out
    with force_locale(surv["officer"].locale or "en"):
        overdue = str(_("overdue since %(time)s", time="")).strip()
    assert overdue in officer.get("/surveillance").get_data(as_text=True)
