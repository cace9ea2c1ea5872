"""Series, sessions in the hub's zone, invitations bound to a person or a clinic, reminders."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import pytest
from sqlalchemy import select

from telehealth import clock
from telehealth.conferences import services
from telehealth.conferences.models import ConferenceSession, MemberRole
from telehealth.errors import NotFound, PermissionDenied
from telehealth.extensions import db
from telehealth.i18n.formatting import local_call_time
from telehealth.notifications.models import OutboxKind, OutboxMessage
from tests.conftest import PASSWORD


def test_sessions_follow_the_hubs_local_time_across_daylight_saving(
        conference: dict[str, Any]) -> None:
    series = conference["series"]
    series.timezone, series.weekday, series.start_minute = "Europe/Paris", 2, 14 * 60
    starts = services.occurrences(series, date(2026, 10, 19), 2)
    # Wednesday 14:00 in Paris: 12:00 UTC in summer time, 13:00 UTC after 25 October.
    assert starts == [datetime(2026, 10, 21, 12, 0, tzinfo=UTC),
                      datetime(2026, 10, 28, 13, 0, tzinfo=UTC)]


def test_generated_sessions_are_not_duplicated(conference: dict[str, Any]) -> None:
    series, coordinator = conference["series"], conference["coordinator"]
    first = services.generate_sessions(series, coordinator, 4)
    again = services.generate_sessions(series, coordinator, 4)
    assert len(first) == 4 and again == []
    with pytest.raises(PermissionDenied):
        services.generate_sessions(series, conference["clinician"], 4)


def test_agenda_is_a_teaching_slot_then_case_slots(conference: dict[str, Any]) -> None:
    slots = services.agenda(conference["session"])
    assert slots[0].teaching and len(slots) == 4
    assert (slots[1].starts_at - slots[0].starts_at).total_seconds() == 20 * 60
    assert slots[-1].ends_at == conference["session"].ends_at


def test_each_reader_sees_the_time_in_their_zone_and_language(
        app: Any, conference: dict[str, Any]) -> None:
    session, clinician = conference["session"], conference["clinician"]
    clinician.timezone, clinician.locale = "Africa/Maputo", "pt"
    db.session.commit()
    client = app.test_client()
    client.post("/login", data={"email": clinician.email, "password": PASSWORD})
    page = client.get(f"/conferences/sessions/{session.id}").text
    assert local_call_time(session.starts_at, "pt", "Africa/Maputo") in page


def test_an_invitation_is_bound_to_its_person(conference: dict[str, Any]) -> None:
    series, coordinator = conference["series"], conference["coordinator"]
    guest = conference["other_specialist"]
    _invitation, token = services.create_invitation(series, coordinator, user=guest)
    with pytest.raises(NotFound):
        services.accept_invitation(token, conference["other_clinician"])
    assert services.accept_invitation(token, guest) is series
    assert services.member_role(guest, series.id) == MemberRole.PARTICIPANT
    with pytest.raises(NotFound):
        services.accept_invitation("not-a-token", guest)


def test_an_invitation_for_a_clinic_lets_its_clinicians_in(conference: dict[str, Any]) -> None:
    series, coordinator = conference["series"], conference["coordinator"]
    other = conference["other_clinician"]
    _invitation, token = services.create_invitation(series, coordinator,
                                                    clinic=conference["other_clinic"])
    assert services.member_role(other, series.id) is None
    services.accept_invitation(token, other)
    assert services.member_role(other, series.id) == MemberRole.PARTICIPANT


def test_reminders_go_once_to_every_member(conference: dict[str, Any],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    session: ConferenceSession = conference["session"]
    conference["clinician"].locale, conference["clinician"].timezone = "fr", "Africa/Lubumbashi"
    db.session.commit()
    # The e-mails are written to the outbox as if a mail server were set up (not sent here).
    monkeypatch.setattr("telehealth.notifications.services.mail_configured", lambda: True)
    sent = services.send_reminders(clock.now())
    queued = list(db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.event == "conference_reminder")))
    events = [n for n in queued if n.kind == OutboxKind.EVENT]
    assert sent == 3 and {n.user_id for n in events} == {
        conference[who].id for who in ("clinician", "specialist", "coordinator")}
    # In the reader's language and zone (the clinician reads French, in Goma's zone).
    mail = next(n for n in queued if n.kind == OutboxKind.EMAIL
                and n.user_id == conference["clinician"].id)
    assert local_call_time(session.starts_at, "fr", "Africa/Lubumbashi") in mail.body
    assert services.send_reminders(clock.now()) == 0
    assert session.reminded_at is not None
    db.session.rollback()


def test_a_series_starts_with_a_coordinator(world: dict[str, Any]) -> None:
    with pytest.raises(PermissionDenied):
        services.create_series(world["specialist"], services.SeriesInput(
            "Topic", ["en"], "UTC", 0, time(9)))
