"""Detection right after data changes, stage clocks on the offers' sweeper, local-day counting."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy import func, select

from telehealth import clock, signals
from telehealth.audit.models import AuditEvent
from telehealth.diagnoses.services import add_diagnosis
from telehealth.extensions import db
from telehealth.matching.sweeper import sweep_once
from telehealth.notifications.models import OutboxKind, OutboxMessage
from telehealth.surveillance import services
from telehealth.surveillance.models import Alert, AlertStage


def _consults(make_consult: Any, surv: dict[str, Any], n: int) -> list[Any]:
    """n consults from Goma's clinics this week, each taken by the specialist."""
    consults = []
    for i in range(n):
        consult = make_consult(surv["clinicians"][i % len(surv["clinicians"])])
        consult.specialist_id = surv["specialist"].id
        consults.append(consult)
    db.session.commit()
    return consults


def _bloody_alerts(surv: dict[str, Any]) -> list[Alert]:
    return list(db.session.scalars(select(Alert).where(
        Alert.syndrome_id == surv["syndromes"]["bloody_diarrhoea"].id,
        Alert.area_id == surv["goma"].id)))


def test_coding_the_consults_of_an_outbreak_opens_the_alert_at_once(surv, make_consult) -> None:
    """No periodic run (jobs run eagerly in tests, the periodic ones never): the third code
    of bloody diarrhoea in Goma this week opens the alert when its request commits."""
    consults = _consults(make_consult, surv, 3)
    wanted: list[dict[str, Any]] = []

    def spy(_sender: Any, **kwargs: Any) -> None:
        wanted.append(kwargs)

    signals.outbreak_detection_wanted.connect(spy)
    try:
        for consult in consults[:2]:
            add_diagnosis(consult, surv["specialist"], "A03.9")
            db.session.commit()
            assert _bloody_alerts(surv) == []
        add_diagnosis(consults[2], surv["specialist"], "A03.9")
        assert _bloody_alerts(surv) == []  # not before the commit
        db.session.commit()
    finally:
        signals.outbreak_detection_wanted.disconnect(spy)
    [alert] = _bloody_alerts(surv)
    assert alert.observed == 3 and alert.stage == AlertStage.VERIFICATION
    bloody = surv["syndromes"]["bloody_diarrhoea"].id
    assert wanted == [{"area_id": surv["goma"].id, "syndrome_id": bloody}] * 3


def test_a_burst_of_codes_asks_for_one_run(surv, make_consult) -> None:
    consults = _consults(make_consult, surv, 3)
    wanted: list[dict[str, Any]] = []

    def spy(_sender: Any, **kwargs: Any) -> None:
        wanted.append(kwargs)

    signals.outbreak_detection_wanted.connect(spy)
    goma, bloody = surv["goma"].id, surv["syndromes"]["bloody_diarrhoea"].id
    try:
        for consult in consults:  # one transaction (an import, a batch): one run
            add_diagnosis(consult, surv["specialist"], "A03.9")
        db.session.commit()
        assert len(wanted) == 1
        # While a run is queued (marked), later commits ask for none: the run reads them.
        assert services._mark_pending(goma, bloody)
        consult = _consults(make_consult, surv, 1)[0]
        add_diagnosis(consult, surv["specialist"], "A03.9")
        db.session.commit()
        assert len(wanted) == 1
        # Once the run has started, a new code asks again.
        services.detection_starting(goma, bloody)
        consult = _consults(make_consult, surv, 1)[0]
        add_diagnosis(consult, surv["specialist"], "A04.0")
        db.session.commit()
        assert len(wanted) == 2
        # A code that maps to no syndrome asks for nothing.
        consult = _consults(make_consult, surv, 1)[0]
        add_diagnosis(consult, surv["specialist"], "I10")
        db.session.commit()
        assert len(wanted) == 2
    finally:
        signals.outbreak_detection_wanted.disconnect(spy)
        services.detection_starting(goma, bloody)


def test_a_weekly_report_runs_detection_when_saved(surv) -> None:
    clinic, clinician = surv["clinic"], surv["clinician"]
    week = services.week_label(services.week_start(clock.now().date(), "iso"), "iso")
    cases = {s.id: "0" for s in services.active_syndromes()}
    cases[surv["syndromes"]["bloody_diarrhoea"].id] = "6"
    services.submit_weekly_report(clinic, clinician, week, cases)
    assert _bloody_alerts(surv) == []
    db.session.commit()
    [alert] = _bloody_alerts(surv)
    assert alert.observed == 6


def _overdue_alert(surv: dict[str, Any], coded: Any) -> Alert:
    coded(surv["clinician"], ["A98"])  # one VHF case
    [alert] = [a for a in services.run_detection() if a.area_id == surv["goma"].id]
    alert.due_at = clock.now() - timedelta(minutes=1)
    db.session.commit()
    return alert


def _overdue_messages(alert_id: int) -> list[OutboxMessage]:
    return [m for m in db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == OutboxKind.EVENT, OutboxMessage.event == "alert.overdue"))
        if m.payload.get("alert_id") == alert_id]


def test_an_overdue_verification_escalates_once_on_the_offer_sweeper(surv, coded) -> None:
    alert = _overdue_alert(surv, coded)
    assert sweep_once().escalated == 1
    messages = _overdue_messages(alert.id)
    told = {m.user_id for m in messages}
    assert told == {surv["officer"].id, surv["coordinator"].id, surv["admin"].id}
    assert surv["other_officer"].id not in told
    assert db.session.scalar(select(func.count(AuditEvent.id)).where(
        AuditEvent.action == "alert.overdue")) == 1
    assert sweep_once().escalated == 0  # once
    assert len(_overdue_messages(alert.id)) == len(messages)
    # Verifying it starts the next stage's clock; that one escalates again when it runs out.
    alert = db.session.get(Alert, alert.id)
    services.move_alert(alert, surv["officer"], AlertStage.MONITORING, "Watching.")
    db.session.commit()
    assert alert.escalated_at is None and alert.due_at > clock.now()
    assert sweep_once().escalated == 0


def test_several_sweepers_escalate_an_alert_once(app: Flask, surv, coded) -> None:
    """Two sweepers at once (threads with their own app context and connection, as two
    processes have): one wins each alert, the other changes nothing."""
    alerts = [_overdue_alert(surv, coded)]
    coded(surv["clinician"], ["A80"])  # an AFP case: a second overdue alert
    [afp] = [a for a in services.run_detection() if a.area_id == surv["goma"].id]
    afp.due_at = clock.now() - timedelta(minutes=5)
    db.session.commit()
    alerts.append(afp)
    barrier = threading.Barrier(2)
    results: list[int] = []

    def sweeper() -> None:
        with app.app_context():
            barrier.wait()
            results.append(sweep_once().escalated)
            db.session.remove()

    threads = [threading.Thread(target=sweeper) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(results) == 2
    for alert in alerts:
        per_user = [m.user_id for m in _overdue_messages(alert.id)]
        assert sorted(per_user) == sorted(set(per_user)) and len(per_user) == 3


def _saturday_before(day: date) -> date:
    return day - timedelta(days=(day.weekday() - 5) % 7 or 7)


def test_a_consult_counts_on_its_local_day(app: Flask, surv, coded) -> None:
    """Saturday 23:30 in Port-au-Prince is already Sunday in UTC: in MMWR weeks (from
    Sunday) it belongs to the week that ends that Saturday, not the next."""
    saturday = _saturday_before(clock.now().date() - timedelta(days=7))
    clinic = surv["clinic"]
    clinic.timezone = "America/Port-au-Prince"
    db.session.commit()
    seen = datetime(saturday.year, saturday.month, saturday.day, 23, 30,
                    tzinfo=ZoneInfo("America/Port-au-Prince")).astimezone(UTC)
    assert seen.date() == saturday + timedelta(days=1)  # Sunday in UTC
    coded(surv["clinician"], ["A039"], seen_at=seen)
    bloody = surv["syndromes"]["bloody_diarrhoea"].id
    mmwr_week = services.week_start(saturday, "mmwr")
    assert mmwr_week == saturday - timedelta(days=6)
    assert list(services.count_cases("mmwr").by_clinic) == [(bloody, clinic.id, mmwr_week)]
    iso_week = services.week_start(saturday, "iso")
    assert list(services.count_cases("iso").by_clinic) == [(bloody, clinic.id, iso_week)]
    # A clinic with no zone of its own counts in the deployment's.
    clinic.timezone = "UTC"
    db.session.commit()
    old = app.config.get("SURVEILLANCE_TIMEZONE")
    app.config["SURVEILLANCE_TIMEZONE"] = "America/Port-au-Prince"
    try:
        assert list(services.count_cases("mmwr").by_clinic) == [(bloody, clinic.id, mmwr_week)]
        app.config["SURVEILLANCE_TIMEZONE"] = "UTC"
        assert list(services.count_cases("mmwr").by_clinic) == [
            (bloody, clinic.id, saturday + timedelta(days=1))]
    finally:
        app.config["SURVEILLANCE_TIMEZONE"] = old


def test_the_line_list_uses_the_local_week(app: Flask, surv, coded) -> None:
    saturday = _saturday_before(clock.now().date() - timedelta(days=7))
    clinic = surv["clinic"]
    clinic.timezone = "America/Port-au-Prince"
    db.session.commit()
    seen = datetime(saturday.year, saturday.month, saturday.day, 23, 30,
                    tzinfo=ZoneInfo("America/Port-au-Prince")).astimezone(UTC)
    consult = coded(surv["clinician"], ["A98"], seen_at=seen)
    old = app.config.get("SURVEILLANCE_EPI_WEEKS")
    app.config["SURVEILLANCE_EPI_WEEKS"] = "mmwr"
    try:
        alert = Alert(syndrome_id=surv["syndromes"]["vhf"].id, area_id=surv["goma"].id,
                      week_start=services.week_start(saturday, "mmwr"), detector="fixed",
                      observed=1, stage=AlertStage.VERIFICATION)
        db.session.add(alert)
        db.session.commit()
        [row] = services.line_list(alert)
        assert row.consult_id == consult.id and row.seen_on == saturday
    finally:
        app.config["SURVEILLANCE_EPI_WEEKS"] = old
