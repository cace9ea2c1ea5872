"""Stored values this version cannot interpret (an enum member, a zone, a locale written by an
older version or by hand) never break a page, for any role, on SQLite and PostgreSQL; services
refuse to act on them with a clear error."""

from __future__ import annotations

import logging
from datetime import time, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from telehealth import clock, db_types
from telehealth.accounts.models import User
from telehealth.cli import DEMO_PASSWORD
from telehealth.db_types import UnknownValue, _TolerantEnum
from telehealth.extensions import db
from tests.robustness.test_hostile_inputs import crashes, raised_at
from tests.weight.demo import DEMO_ROLES, seed_world, user, walk

LEGACY = "LEGACY_X"
# Columns holding a name from a fixed list that are plain strings in the schema.
CODE_COLUMNS = {
    ("users", "timezone"): "Mars/Olympus",
    ("users", "locale"): "xx",
    ("clinics", "timezone"): "Europe/Geneva",
    ("conference_series", "timezone"): "Nowhere/Atlantis",
    ("conference_cases", "sex"): "legacy",
    ("consults", "patient_age_band"): "legacy-band",
}


def enum_columns() -> list[tuple[str, str]]:
    return [(table.name, column.name) for table in db.metadata.sorted_tables
            for column in table.columns if isinstance(column.type, _TolerantEnum)]


def store_raw(values: dict[tuple[str, str], str], skip: tuple[tuple[str, str], ...] = ()
              ) -> None:
    """Write past every validator and the ORM, as an old version or a hand edit would have."""
    for (table, column), value in values.items():
        if (table, column) in skip:
            continue
        db.session.execute(text(f'UPDATE "{table}" SET "{column}" = :value '
                                f'WHERE "{column}" IS NOT NULL'), {"value": value})
    db.session.commit()
    db.session.expire_all()


def add_conference() -> None:
    """A series with a session and a case, so the conference pages have rows to show."""
    from telehealth.conferences import services
    from telehealth.conferences.models import ConferenceSession, MemberRole
    from telehealth.consults.models import Consult

    coordinator, specialist = user(DEMO_ROLES["coordinator"]), user(DEMO_ROLES["specialist"])
    clinician = user(DEMO_ROLES["clinician"])
    series = services.create_series(coordinator, services.SeriesInput(
        topic="Fever in children", languages=["fr", "en"], timezone="Africa/Kinshasa",
        weekday=2, start=time(14, 0)))
    services.add_member(series, coordinator, MemberRole.SPECIALIST, user=specialist)
    services.add_member(series, coordinator, MemberRole.PARTICIPANT, clinic=clinician.clinic)
    start = (clock.now() + timedelta(days=1)).replace(microsecond=0)
    session = ConferenceSession(series_id=series.id, starts_at=start,
                                ends_at=start + timedelta(minutes=90))
    db.session.add(session)
    db.session.flush()
    consult = db.session.scalars(select(Consult).where(Consult.created_by_id == clinician.id)
                                 ).first()
    services.create_case(session, consult, clinician, services.CaseInput(
        history="Five days of fever.", question="Measles?", image_ids=[]))
    db.session.commit()


ID_TABLES = {"consult_id": "consults", "series_id": "conference_series",
             "session_id": "conference_sessions", "case_id": "conference_cases",
             "alert_id": "alerts", "user_id": "users", "attachment_id": "attachments",
             "area_id": "areas", "note_id": "notes"}


def row_pages(app: Any) -> list[str]:
    """Every GET page about one row, for a row of each kind: lists filter by status, so a row
    with an unknown status may be linked from nowhere, yet its own page must still open."""
    pages = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or not rule.arguments or rule.endpoint.endswith("static"):
            continue
        path = rule.rule
        for argument in rule.arguments:
            table = ID_TABLES.get(argument)
            found = table and db.session.scalars(text(f'SELECT id FROM "{table}"')).all()
            if not found:
                break
            path = path.replace(f"<int:{argument}>", str(found[-1]))
        else:
            if "<" not in path:
                pages.append(path)
    return pages


def walk_everyone(app: Any) -> list[tuple[str, str, int]]:
    """Every account walks the pages its role links to; the 5xx answers."""
    failures: list[Any] = []
    errors: list[Any] = []
    pages = row_pages(app)
    assert len(pages) > 10, pages
    for email in db.session.scalars(select(User.email)).all():
        client = app.test_client()
        signed_in = client.post("/login", data={"email": email, "password": DEMO_PASSWORD})
        if signed_in.status_code >= 500:
            failures.append((email, "/login", signed_in.status_code))
            continue

        def fetch(path: str, client: Any = client, email: str = email) -> tuple[int, str]:
            try:
                response = client.get(path)
            except Exception as exc:  # noqa: BLE001 - the test names what broke, and where
                errors.append((email, path, f"{type(exc).__name__}: {exc} at {raised_at(exc)}"))
                return 599, ""
            html = response.mimetype == "text/html"
            body = response.get_data(as_text=True) if html else ""
            response.close()  # a file sent from disk stays open until then
            return response.status_code, body

        extra = ("/conferences", "/situation", "/surveillance", "/roster", "/admin/users",
                 "/account/preferences")
        visited = walk(fetch, start=("/", *extra), limit=60)
        visited.update({path: fetch(path)[0] for path in pages})
        failures += [(email, path, status) for path, status in visited.items()
                     if status >= 500]
    failures += errors
    return failures


def test_unknown_enum_values_zones_and_locales_never_break_a_page(app, caplog):
    db_types._LOGGED.clear()  # each unknown value is logged once per process
    seed_world(photo_size=(320, 240))
    add_conference()
    legacy = dict.fromkeys(enum_columns(), LEGACY)
    # Everyone keeps a role they can sign in with; an unknown role has its own test below.
    store_raw({**legacy, **CODE_COLUMNS}, skip=(("users", "role"),))
    with caplog.at_level(logging.WARNING):
        failures = walk_everyone(app)
    assert failures == [], crashes(caplog)
    assert "LEGACY_X" in caplog.text and "Mars/Olympus" in caplog.text


def test_a_consult_page_shows_an_unknown_status_as_such(app):
    seed_world(photo_size=(320, 240))
    store_raw({("consults", "status"): LEGACY, ("consults", "urgency"): "SOMEDAY"})
    from telehealth.consults.models import Consult

    consult = db.session.scalars(select(Consult)).first()
    assert isinstance(consult.status, UnknownValue)
    client = app.test_client()
    client.post("/login", data={"email": DEMO_ROLES["clinician"], "password": DEMO_PASSWORD})
    page = client.get(f"/consults/{consult.id}")
    assert page.status_code == 200
    assert f"unknown: {LEGACY}" in page.text


def test_services_refuse_to_act_on_an_unknown_status(app):
    seed_world(photo_size=(320, 240))
    store_raw({("consults", "status"): LEGACY, ("offers", "status"): LEGACY})
    from telehealth.consults.models import Consult

    consult = db.session.scalars(select(Consult)).first()
    clinician = app.test_client()
    clinician.post("/login", data={"email": DEMO_ROLES["clinician"], "password": DEMO_PASSWORD})
    for path in (f"/consults/{consult.id}/cancel", f"/consults/{consult.id}/close",
                 f"/consults/{consult.id}/submit"):
        response = clinician.post(path, data={"reason": "no longer needed",
                                              "outcome": "RESOLVED"})
        assert response.status_code < 500, path
    specialist = app.test_client()
    specialist.post("/login", data={"email": DEMO_ROLES["specialist"],
                                    "password": DEMO_PASSWORD})
    for path in (f"/consults/{consult.id}/accept", f"/consults/{consult.id}/decline"):
        assert specialist.post(path).status_code < 500, path
    refused = clinician.post(f"/api/consults/{consult.id}/cancel",
                             json={"reason": "no longer needed"})
    assert refused.status_code == 409
    assert "(LEGACY_X)" in refused.json["error"]  # named, in the clinician's language
    db.session.expire_all()
    assert db.session.scalar(text("SELECT DISTINCT status FROM consults")) == LEGACY


def test_an_account_with_an_unknown_role_is_refused_cleanly_and_shown_to_the_admin(app):
    seed_world(photo_size=(320, 240))
    victim = user(DEMO_ROLES["coordinator"])
    db.session.execute(text("UPDATE users SET role = :role WHERE id = :id"),
                       {"role": "SUPERVISOR", "id": victim.id})
    db.session.commit()
    db.session.expire_all()
    client = app.test_client()
    signed_in = client.post("/login", data={"email": victim.email, "password": DEMO_PASSWORD})
    assert signed_in.status_code < 500
    for path in ("/", "/roster", "/admin/users", "/account/preferences"):
        assert client.get(path).status_code < 500, path
    admin = app.test_client()
    admin.post("/login", data={"email": DEMO_ROLES["admin"], "password": DEMO_PASSWORD})
    listing = admin.get("/admin/users")
    assert listing.status_code == 200 and "unknown: SUPERVISOR" in listing.text
    page = admin.get(f"/admin/users/{victim.id}")
    assert page.status_code == 200
    # The administrator repairs it with the ordinary form.
    repaired = admin.post(f"/admin/users/{victim.id}", data={
        "role": "coordinator", "clinic": "", "active": "y", "timezone": "", "locale": ""})
    assert repaired.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, victim.id).role.value == "coordinator"


def test_acting_in_a_stored_zone_gone_bad_is_refused_clearly(app):
    """Planning sessions in the hub's zone, or proposing a call time in one's own: refused
    with the zone named (an administrator or the person repairs it), never a 500."""
    seed_world(photo_size=(320, 240))
    add_conference()
    store_raw({("conference_series", "timezone"): "Nowhere/Atlantis",
               ("users", "timezone"): "Mars/Olympus"})
    from telehealth.conferences.models import ConferenceSeries
    from telehealth.consults.models import Consult

    series = db.session.scalars(select(ConferenceSeries)).first()
    coordinator = app.test_client()
    coordinator.post("/login", data={"email": DEMO_ROLES["coordinator"],
                                     "password": DEMO_PASSWORD})
    planned = coordinator.post(f"/conferences/{series.id}/sessions", data={"weeks": "4"})
    assert 400 <= planned.status_code < 500
    assert "Nowhere/Atlantis" in planned.text
    consult = db.session.scalars(select(Consult)).first()
    clinician = app.test_client()
    clinician.post("/login", data={"email": DEMO_ROLES["clinician"], "password": DEMO_PASSWORD})
    proposed = clinician.post(f"/consults/{consult.id}/call/proposals",
                              data={"starts_at": "2030-01-01T10:00"})
    assert proposed.status_code < 500


def test_an_unknown_value_equals_no_member_and_cannot_be_acted_on():
    from telehealth.consults.models import ConsultStatus
    from telehealth.db_types import known
    from telehealth.errors import Conflict

    value = UnknownValue("LEGACY_X", ConsultStatus)
    assert str(value) == "unknown: LEGACY_X" and value.value == value.raw == "LEGACY_X"
    assert all(value != member for member in ConsultStatus)
    assert value not in {ConsultStatus.DRAFT, ConsultStatus.CLOSED}
    assert known(ConsultStatus.CLOSED) is ConsultStatus.CLOSED
    with pytest.raises(Conflict, match="LEGACY_X"):
        known(value)
