"""The roster as coordinators and specialists use it, through the pages."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from telehealth import clock
from telehealth.accounts.models import Role, User
from telehealth.audit.models import AuditEvent
from telehealth.consults.models import Consult, ConsultStatus
from telehealth.extensions import db
from telehealth.roster.models import AvailabilityWindow, CredentialStatus, ProfileStatus
from telehealth.roster.services import (
    format_windows,
    get_profile,
    load_report,
    parse_windows,
)
from tests.conftest import PASSWORD, image_bytes

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(NOW)


def _invite(client, auth, coordinator, email="new.doc@example.org"):
    auth.login(coordinator)
    response = client.post("/roster/invite", data={"email": email})
    assert response.status_code == 200, response.text
    link = response.text.split('<code id="invite-link">')[1].split("</code>")[0]
    auth.logout()
    return link.replace("http://localhost", "")


def test_invite_link_signs_up_once_and_expires(client, auth, world, make_specialty):
    cardiology = make_specialty("cardiology")
    link = _invite(client, auth, world["coordinator"])
    form = {"name": "Dr New", "password": PASSWORD, "timezone": "America/Montreal",
            "languages": "fr:3 en:2", "specialties": [str(cardiology.id)]}
    assert client.post(link, data={**form, "timezone": "Mars/Olympus"}).status_code == 400
    response = client.post(link, data=form)
    assert response.status_code == 302
    user = db.session.scalar(db.select(User).where(User.email == "new.doc@example.org"))
    assert user.role == Role.SPECIALIST and get_profile(user).status == ProfileStatus.PENDING
    assert {lang.language: lang.level for lang in user.languages} == {"fr": 3, "en": 2}
    # Used once: the same link now refuses.
    assert client.get(link).status_code == 409
    assert "already been used" in client.post(link, data=form).text

    other = _invite(client, auth, world["coordinator"], "late@example.org")
    clock.freeze(NOW + timedelta(hours=73))
    response = client.get(other)
    assert response.status_code == 409 and "expired" in response.text
    assert client.get("/signup/not-a-token").status_code == 404


@pytest.mark.parametrize("role", ["clinician", "specialist", "other_specialist"])
def test_only_coordinators_and_admins_manage_the_roster(client, auth, world, role):
    auth.login(world[role])
    for url in ("/roster", "/roster/export.csv", "/roster/load", "/roster/invite",
                "/roster/import"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/roster/{world['specialist'].id}/suspend").status_code == 403
    assert client.post(f"/roster/{world['specialist'].id}/credential/verify").status_code == 403
    if role != "specialist":
        assert client.get(f"/roster/{world['specialist'].id}").status_code == 403


def test_anonymous_is_sent_to_login(client, world):
    assert client.get("/roster").status_code == 302


def test_approve_suspend_reactivate(client, auth, world, make_user):
    pending = make_user(Role.SPECIALIST, roster=False, name="Dr Pending")
    auth.login(world["coordinator"])
    assert client.get(f"/roster/{pending.id}").status_code == 200
    assert client.post(f"/roster/{pending.id}/reactivate").status_code == 409
    for action, status in [("approve", ProfileStatus.ACTIVE), ("suspend", ProfileStatus.SUSPENDED),
                           ("reactivate", ProfileStatus.ACTIVE)]:
        assert client.post(f"/roster/{pending.id}/{action}").status_code == 302
        db.session.expire_all()
        assert get_profile(pending).status == status
    actions = [e.action for e in db.session.scalars(db.select(AuditEvent).where(
        AuditEvent.action.like("roster.%")).order_by(AuditEvent.id))]
    assert actions == ["roster.active", "roster.suspended", "roster.active"]


def test_credential_upload_verify_and_expiry_flags(client, auth, world, make_consult):
    specialist = world["specialist"]
    auth.login(specialist)
    response = client.post(f"/roster/{specialist.id}/credential", data={
        "licence_number": "CMQ-1234", "licence_body": "Collège des médecins du Québec",
        "licence_country": "ca", "expires_on": (NOW.date() + timedelta(days=20)).isoformat(),
        "document": (io.BytesIO(image_bytes()), "licence.jpg")},
        content_type="multipart/form-data")
    assert response.status_code == 302
    profile = get_profile(specialist)
    assert profile.credential_status == CredentialStatus.UNVERIFIED
    assert profile.document_name == "licence.jpg" and profile.licence_country == "CA"
    # Unverified: not offered.
    assert make_consult(world["clinician"]).status == ConsultStatus.ESCALATED
    auth.logout()

    auth.login(world["coordinator"])
    assert client.post(f"/roster/{specialist.id}/credential/verify").status_code == 302
    db.session.expire_all()
    profile = get_profile(specialist)
    assert profile.verified_by_id == world["coordinator"].id and profile.verified_at == NOW
    page = client.get("/roster?status=expiring").text
    assert specialist.name in page and "expires 2026-12-15" in page
    document = client.get(f"/roster/{specialist.id}/credential/document")
    assert document.status_code == 200 and document.data.startswith(b"\xff\xd8")
    document.close()
    assert make_consult(world["clinician"]).status == ConsultStatus.OFFERED

    clock.freeze(NOW + timedelta(days=21))  # expired: ineligible until renewed
    auth.login(world["coordinator"])  # three weeks idle: the session has timed out
    assert specialist.name in client.get("/roster?status=expired").text
    assert make_consult(world["clinician"]).status == ConsultStatus.ESCALATED


def test_bad_credential_input_is_explained(client, auth, world):
    auth.login(world["specialist"])
    response = client.post(f"/roster/{world['specialist'].id}/credential", data={
        "licence_number": "X1", "licence_body": "Board", "licence_country": "12",
        "expires_on": "2027-01-01", "document": (io.BytesIO(b"MZ..."), "virus.exe")},
        content_type="multipart/form-data")
    assert response.status_code == 400 and "two-letter code" in response.text


def test_profile_availability_and_leave(client, auth, world, make_consult):
    specialist = world["specialist"]
    auth.login(specialist)
    specialty = specialist.specialties[0]
    form = {"name": "Dr S", "timezone": "Australia/Sydney", "specialties": [str(specialty.id)],
            "subspecialty": "Echocardiography", "languages": "en:3 fr:1", "capacity": "2",
            "availability": "mon 08:00-12:00; thu 08:00-12:00"}
    assert client.post(f"/roster/{specialist.id}/profile",
                       data={**form, "availability": "mon 12:00-08:00"}).status_code == 400
    assert client.post(f"/roster/{specialist.id}/profile", data=form).status_code == 302
    profile = get_profile(specialist)
    assert [(w.weekday, w.start_minute, w.end_minute) for w in profile.windows] == [
        (0, 480, 720), (3, 480, 720)]
    assert specialist.timezone == "Australia/Sydney" and profile.capacity == 2
    assert client.post(f"/roster/{specialist.id}/leave", data={
        "first_day": "2026-11-26", "last_day": "2026-11-27", "reason": "Conference"}
    ).status_code == 302
    # Thursday 26 Nov 09:30 in Sydney is inside the window, but on leave.
    clock.freeze(datetime(2026, 11, 25, 22, 30, tzinfo=UTC))
    assert make_consult(world["clinician"]).status == ConsultStatus.ESCALATED


def test_parse_windows_rejects_nonsense():
    assert parse_windows("sun 22:00-24:00") == [(6, 1320, 1440)]
    for text in ("someday 08:00-09:00", "mon 09:00-08:00", "mon 08:70-09:00"):
        with pytest.raises(Exception, match="window|before"):
            parse_windows(text)



@pytest.mark.parametrize("language, text", [
    ("fr", "lun. 08:00-12:00; mardi 14:00-18:00; dim 09:00-10:00"),
    ("es", "lun 08:00-12:00; martes 14:00-18:00; dom 09:00-10:00"),
    ("ar", "الاثنين 08:00-12:00; الثلاثاء 14:00-18:00; الأحد 09:00-10:00"),
    ("sw", "Jumatatu 08:00-12:00; Jumanne 14:00-18:00; Jumapili 09:00-10:00"),
])
def test_availability_in_the_readers_own_day_names(app, language, text):
    """A French specialist types "lun." and reads "lun." back; English names still do."""
    expected = [(0, 480, 720), (1, 840, 1080), (6, 540, 600)]
    with app.test_request_context("/", headers={"Accept-Language": language}):
        assert parse_windows(text) == expected
        assert parse_windows("mon 08:00-12:00; tue 14:00-18:00; sun 09:00-10:00") == expected
        windows = [AvailabilityWindow(weekday=d, start_minute=s, end_minute=e)
                   for d, s, e in expected]
        shown = format_windows(windows, language)
        assert "mon" not in shown and parse_windows(shown) == expected
        assert format_windows(windows) == "mon 08:00-12:00; tue 14:00-18:00; sun 09:00-10:00"
        unknown = "mie" if language == "fr" else "mer"  # another language's Wednesday
        with pytest.raises(Exception, match=unknown):
            parse_windows(f"{unknown} 08:00-09:00")


def test_the_hand_assignment_list_holds_the_specialtys_volunteers(client, auth, world,
                                                                   make_consult, make_user):
    neurologist = make_user(Role.SPECIALIST, name="Dr Neuro", specialties=("neurology",))
    db.session.commit()
    consult = make_consult(world["clinician"], specialty="neurology")
    auth.login(world["coordinator"])
    page = client.get(f"/consults/{consult.id}/matching").text
    assert f'<option value="{neurologist.id}">Dr Neuro · ' in page
    assert f'<option value="{world["specialist"].id}">' not in page  # another specialty
    response = client.post(f"/consults/{consult.id}/assign", data={
        "specialist_id": str(neurologist.id), "note": "chosen from the list"})
    assert response.status_code == 302
    db.session.refresh(consult)
    assert consult.specialist_id == neurologist.id


def test_roster_filters(client, auth, world, make_user):
    make_user(Role.SPECIALIST, name="Dr Swahili", languages=("sw",), specialties=("paediatrics",))
    suspended = make_user(Role.SPECIALIST, name="Dr Away")
    get_profile(suspended).status = ProfileStatus.SUSPENDED
    db.session.commit()
    auth.login(world["coordinator"])
    assert "Dr Swahili" in client.get("/roster?language=sw").text
    assert "Dr Away" not in client.get("/roster?language=sw").text
    page = client.get("/roster?status=suspended").text
    assert "Dr Away" in page and "Dr Swahili" not in page
    assert "Dr Away" in client.get("/roster?q=away").text
    assert "Dr Swahili" in client.get("/roster?load=free").text
    assert "Dr Swahili" not in client.get("/roster?load=full").text
    assert client.get("/roster?specialty=abc").status_code == 400


def test_load_report_shows_the_busiest_share(client, auth, world, make_user, make_consult):
    # Ten specialists (with the world's two): the busiest 10% is one person.
    people = [world["specialist"]] + [make_user(Role.SPECIALIST) for _i in range(8)]
    consults = [make_consult(world["clinician"], submit=False) for _i in range(10)]
    # The first specialist did 7 of 10, one 40 days ago; the others one or none each.
    for index, consult in enumerate(consults):
        who = people[0] if index < 7 else people[index - 6]  # 7 + one each for three
        when = NOW - timedelta(days=40 if index == 0 else 2)
        db.session.execute(db.update(Consult).where(Consult.id == consult.id).values(
            specialist_id=who.id, accepted_at=when, status=ConsultStatus.ACCEPTED))
    db.session.commit()
    report = load_report()
    assert report.total_90 == 10 and report.busiest_count == 1
    assert report.busiest_share == pytest.approx(0.7)
    assert (report.rows[0].last_30, report.rows[0].last_90) == (6, 7)
    auth.login(world["coordinator"])
    page = client.get("/roster/load").text
    assert "did 70% of the 10 consults" in page


def test_coordinator_sees_escalation_and_assigns_by_hand(client, auth, world, make_consult):
    consult = make_consult(world["clinician"], specialty="neurology")
    assert consult.status == ConsultStatus.ESCALATED
    auth.login(world["coordinator"])
    dashboard = client.get("/").text
    assert "Escalated: nobody accepted" in dashboard and consult.reference in dashboard
    page = client.get(f"/consults/{consult.id}/matching").text
    assert "Nobody on the roster is eligible" in page
    # Chosen by name from the active roster, not typed as an internal number nobody is shown.
    # Nobody has neurology: the list is empty and says so; anyone else is named by e-mail
    # (the whole roster, 10,000 volunteers, is no list of options).
    assert 'id="no-specialist"' in page and 'name="specialist_email"' in page
    assert "Specialist number" not in page
    unknown = client.post(f"/consults/{consult.id}/assign", data={
        "specialist_email": "nobody@example.org", "note": "x"})
    assert unknown.status_code == 404
    assert "No specialist has the e-mail address nobody@example.org." in unknown.text
    assert client.post(f"/consults/{consult.id}/assign", data={"note": "x"}).status_code == 400
    response = client.post(f"/consults/{consult.id}/assign", data={
        "specialist_email": world["specialist"].email.upper(),
        "note": "cardiologist knows neurology"})
    assert response.status_code == 302
    db.session.refresh(consult)
    assert consult.specialist_id == world["specialist"].id
    assert db.session.scalar(db.select(AuditEvent).where(
        AuditEvent.action == "consult.assigned")).actor_id == world["coordinator"].id
    auth.logout()
    auth.login(world["clinician"])
    assert client.get(f"/consults/{consult.id}/matching").status_code == 403


def test_candidates_page_gives_reasons(client, auth, world, make_consult):
    consult = make_consult(world["clinician"], submit=False)
    auth.login(world["coordinator"])
    page = client.get(f"/consults/{consult.id}/matching").text
    assert "available now" in page and "speaks French" in page and "0 open consults" in page


def test_every_roster_page_renders(client, auth, world, make_consult):
    link = _invite(client, auth, world["coordinator"])
    signup = client.get(link)
    assert signup.status_code == 200 and "new.doc@example.org" in signup.text
    consult = make_consult(world["clinician"])
    auth.login(world["coordinator"])
    specialist = world["specialist"].id
    for url in ("/roster", "/roster/invite", "/roster/import", "/roster/load",
                f"/roster/{specialist}", f"/consults/{consult.id}/matching", "/"):
        assert client.get(url).status_code == 200, url
    assert client.get("/roster/999999").status_code == 404
    assert client.get(f"/roster/{world['clinician'].id}").status_code == 404
    assert client.post("/roster/invite", data={"email": "not-an-address"}).status_code == 400


def test_removing_a_leave_checks_permission_before_the_leave_exists(client, auth, world):
    """An outsider gets the same refusal for an existing and a made-up leave id."""
    from telehealth.roster.models import LeavePeriod
    from telehealth.roster.services import add_leave

    specialist = world["specialist"]
    leave = add_leave(specialist, NOW.date(), NOW.date(), "Conference", specialist)
    db.session.commit()
    leave_id = leave.id
    missing = leave_id + 1000
    for who in ("other_specialist", "clinician"):
        auth.login(world[who])
        assert client.post(f"/roster/leave/{leave_id}/delete").status_code == 403, who
        assert client.post(f"/roster/leave/{missing}/delete").status_code == 403, who
        auth.logout()
    assert db.session.get(LeavePeriod, leave_id) is not None
    # Those who may remove leave still hear that an id does not exist, and can remove it.
    auth.login(world["coordinator"])
    assert client.post(f"/roster/leave/{missing}/delete").status_code == 404
    auth.logout()
    auth.login(specialist)
    assert client.post(f"/roster/leave/{leave_id}/delete").status_code == 302
    db.session.expire_all()
    assert db.session.get(LeavePeriod, leave_id) is None


@pytest.mark.parametrize(("first", "last", "reason"), [
    ("2026-12-10", "2026-12-05", "end on or after its first day"),
    ("1900-01-01", "1900-01-02", "already ended"),
    ("2206-01-01", "2206-01-02", "at most five years ahead"),
])
def test_a_refused_leave_comes_back_on_the_profile_with_its_dates(client, auth, world, first,
                                                                  last, reason):
    """Not a bare error page that loses the form, nor a leave in 1900 recorded (found trying
    the demo's forms with absurd dates)."""
    from telehealth.roster.models import LeavePeriod

    specialist = world["specialist"]
    auth.login(world["coordinator"])
    page = client.post(f"/roster/{specialist.id}/leave",
                       data={"first_day": first, "last_day": last, "reason": "Typo"})
    assert page.status_code == 400
    assert reason in page.text and 'class="flash flash-error"' in page.text
    assert f'value="{first}"' in page.text and f'value="{last}"' in page.text
    assert 'value="Typo"' in page.text
    assert db.session.scalar(db.select(db.func.count(LeavePeriod.id))) == 0
