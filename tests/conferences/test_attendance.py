"""Acceptance 5: attended minutes from join/leave events, certificates, corrections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from telehealth.audit.models import AuditEvent
from telehealth.conferences import services
from telehealth.conferences.models import AttendanceKind
from telehealth.errors import InvalidInput, PermissionDenied
from telehealth.extensions import db
from tests.conftest import PASSWORD

J, L = AttendanceKind.JOIN, AttendanceKind.LEAVE
T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


@pytest.mark.parametrize(("events", "minutes"), [
    ([(J, at(0)), (L, at(90))], 90),
    # Dropped at 30, reconnected at 32: the gap is not attended.
    ([(J, at(0)), (L, at(30)), (J, at(32)), (L, at(90))], 88),
    # Reconnected on a second device before the first one's leave arrived: counted once.
    ([(J, at(0)), (J, at(29)), (L, at(30)), (L, at(90))], 90),
    # Early arrival and a join without a leave: clipped to the session.
    ([(J, at(-15)), (L, at(10)), (J, at(60))], 40),
    ([(L, at(5)), (J, at(80)), (L, at(200))], 10),
])
def test_attended_minutes(events: list[Any], minutes: int) -> None:
    assert services.attended_seconds(events, at(0), at(90)) // 60 == minutes


def test_attendance_with_a_reconnect_gives_minutes_and_certificate_eligibility(
        conference: dict[str, Any]) -> None:
    session = conference["session"]
    start = session.starts_at
    clinician, specialist = conference["clinician"], conference["specialist"]
    for kind, minute in [(J, 0), (L, 40), (J, 43), (L, 90)]:  # reconnect: 87 of 90 min
        services.record_attendance(session, clinician, kind, start + timedelta(minutes=minute))
    for kind, minute in [(J, 10), (L, 50), (J, 52), (L, 70)]:  # 58 min < 72 (80 %)
        services.record_attendance(session, specialist, kind, start + timedelta(minutes=minute))
    db.session.commit()
    rows = {row.user.id: row for row in services.attendance(session)}
    assert (rows[clinician.id].minutes, rows[clinician.id].eligible) == (87, True)
    assert (rows[specialist.id].minutes, rows[specialist.id].eligible) == (58, False)


def test_a_correction_needs_a_reason_and_is_audited(conference: dict[str, Any]) -> None:
    session, coordinator = conference["session"], conference["coordinator"]
    specialist = conference["specialist"]
    with pytest.raises(InvalidInput):
        services.correct_attendance(session, coordinator, specialist, 80, "   ")
    with pytest.raises(PermissionDenied):
        services.correct_attendance(session, specialist, specialist, 80, "I was there")
    services.correct_attendance(session, coordinator, specialist, 80,
                                "Joined by phone during the power cut; confirmed by the hub.")
    db.session.commit()
    row = services.attendance_of(session, specialist)
    assert row is not None and (row.minutes, row.eligible) == (80, True)
    assert db.session.query(AuditEvent).filter_by(
        action="conference.attendance_corrected").count() == 1


def test_correction_without_reason_is_refused_by_the_page(
        app: Any, conference: dict[str, Any]) -> None:
    session = conference["session"]
    client = app.test_client()
    client.post("/login", data={"email": conference["coordinator"].email, "password": PASSWORD})
    response = client.post(f"/conferences/sessions/{session.id}/attendance",
                           data={"user_id": conference["specialist"].id, "minutes": "80",
                                 "reason": ""})
    assert response.status_code == 400
    assert services.attendance_of(session, conference["specialist"]) is None


def test_certificate_and_csv(app: Any, conference: dict[str, Any]) -> None:
    session, clinician = conference["session"], conference["clinician"]
    services.record_attendance(session, clinician, J, session.starts_at)
    services.record_attendance(session, clinician, L, session.ends_at)
    db.session.commit()
    client = app.test_client()
    client.post("/login", data={"email": clinician.email, "password": PASSWORD})
    page = client.get(f"/conferences/sessions/{session.id}/certificate")
    assert page.status_code == 200 and clinician.name in page.text
    other = app.test_client()
    other.post("/login", data={"email": conference["specialist"].email, "password": PASSWORD})
    assert other.get(f"/conferences/sessions/{session.id}/certificate").status_code == 403
    coordinator = app.test_client()
    coordinator.post("/login", data={"email": conference["coordinator"].email,
                                     "password": PASSWORD})
    csv_text = coordinator.get(f"/conferences/{conference['series'].id}/attendance.csv").text
    assert f"{clinician.email},90,90,yes" in csv_text
