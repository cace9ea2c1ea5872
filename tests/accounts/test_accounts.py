"""Signing in and out, changing a password, and the admin creating people and clinics."""

from __future__ import annotations

import pytest

from telehealth.accounts.models import Role, User
from telehealth.audit.models import AuditEvent
from telehealth.extensions import db
from tests.conftest import PASSWORD


def test_sign_in_and_out(client, auth, world):
    response = auth.login(world["clinician"])
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    auth.logout()
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("email", ["clinician1@example.org", "nobody@example.org"])
def test_wrong_credentials_same_message(client, world, email):
    response = client.post("/login", data={"email": email, "password": "wrong password"})
    assert response.status_code == 401
    assert "Wrong e-mail or password." in response.text
    assert db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "login.failed"))


def test_inactive_user_cannot_sign_in(client, auth, world):
    world["clinician"].active = False
    db.session.commit()
    assert auth.login(world["clinician"]).status_code == 401


def test_passwords_are_argon2_hashes(world):
    assert world["clinician"].password_hash.startswith("$argon2id$")


def test_next_only_to_local_paths(client, world):
    for target, expected in [("/consults/new", "/consults/new"), ("https://evil.example/", "/"),
                             ("//evil.example/", "/"), ("/\\evil.example", "/")]:
        response = client.post(f"/login?next={target}",
                               data={"email": world["clinician"].email, "password": PASSWORD})
        assert response.headers["Location"] == expected, target
        client.post("/logout")


def test_password_change_ends_other_sessions(app, client, auth, world):
    other = app.test_client()
    other.post("/login", data={"email": world["clinician"].email, "password": PASSWORD})
    auth.login(world["clinician"])
    response = client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": "a much better one", "confirm":
            "a much better one"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert other.get("/").status_code == 302  # the other session has ended


def test_password_change_wrong_current(client, auth, world):
    auth.login(world["clinician"])
    response = client.post("/account/password", data={
        "current_password": "nope nope nope", "new_password": "a much better one",
        "confirm": "a much better one"})
    assert response.status_code == 400
    assert "The current password is not right." in response.text


def test_admin_creates_clinic_and_user(client, auth, world):
    auth.login(world["admin"])
    response = client.post("/admin/clinics/new", data={
        "name": "Bukavu Health Post", "country": "cd", "city": "Bukavu",
        "timezone": "Africa/Lubumbashi", "languages": ["fr", "sw"]})
    assert response.status_code == 302
    clinic_id = db.session.scalar(db.select(db.text("id FROM clinics WHERE name = "
                                                    "'Bukavu Health Post'")))
    response = client.post("/admin/users/new", data={
        "email": "Nurse@Example.org", "name": "New Nurse", "password": "long enough pw",
        "role": "clinician", "clinic": str(clinic_id), "timezone": "Africa/Lubumbashi",
        "locale": "fr", "languages": ["fr"]})
    assert response.status_code == 302
    user = db.session.scalar(db.select(User).where(User.email == "nurse@example.org"))
    assert user.role == Role.CLINICIAN and user.clinic_id == clinic_id
    client.post("/logout")
    assert auth.login("nurse@example.org", "long enough pw").status_code == 302



def test_an_emptied_time_zone_is_kept_and_the_admin_is_told(app, client, auth, world):
    auth.login(world["admin"])
    specialist = world["specialist"]
    zone = specialist.timezone
    response = client.post(f"/admin/users/{specialist.id}", data={
        "role": "specialist", "clinic": "", "active": "y", "timezone": "", "locale": ""})
    assert response.status_code == 302
    assert f"The time zone was left as it was: {zone}." in client.get("/admin/users").text
    db.session.expire_all()
    assert db.session.get(User, specialist.id).timezone == zone


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"role": "clinician", "clinic": ""}, "A clinician must belong to a clinic."),
        ({"timezone": "Mars/Olympus"}, "Unknown time zone"),
        ({"email": "not-an-address"}, "This is not an e-mail address."),
        ({"password": "short"}, "between 10 and 200 characters"),
    ],
)
def test_admin_user_form_errors(client, auth, world, data, message):
    auth.login(world["admin"])
    form = {"email": "x@example.org", "name": "X", "password": "long enough pw",
            "role": "specialist", "clinic": "", "timezone": "UTC", "locale": "en"}
    form.update(data)
    response = client.post("/admin/users/new", data=form)
    assert response.status_code == 400
    assert message in response.text
    assert db.session.scalar(db.select(User).where(User.email == "x@example.org")) is None


def test_duplicate_email_refused(client, auth, world):
    auth.login(world["admin"])
    response = client.post("/admin/users/new", data={
        "email": world["clinician"].email.upper(), "name": "Dup", "password": "long enough pw",
        "role": "specialist", "clinic": "", "timezone": "UTC", "locale": "en"})
    assert response.status_code == 400
    assert "already exists" in response.text


def test_deactivating_ends_sessions(app, client, auth, world):
    victim = app.test_client()
    victim.post("/login", data={"email": world["specialist"].email, "password": PASSWORD})
    assert victim.get("/").status_code == 200
    auth.login(world["admin"])
    response = client.post(f"/admin/users/{world['specialist'].id}",
                           data={"role": "specialist", "clinic": ""})  # active unchecked
    assert response.status_code == 302
    assert victim.get("/").status_code == 302


def test_seed_demo(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "marie.kabila@example.org" in result.output
    assert db.session.scalar(db.select(db.func.count(User.id))) >= 19
    again = runner.invoke(args=["seed-demo", "--if-empty"])
    assert again.exit_code == 0 and "nothing added" in again.output


@pytest.mark.parametrize("hour", [12, 3])  # daytime in Lyon; night there (assigned by hand)
def test_seed_demo_gives_every_account_a_case_at_each_step(app, hour):
    """A new user walking the demo found every dashboard empty: now each clinic has a case
    (a draft, one waiting for a volunteer, one taken, one answered, one closed)."""
    from datetime import UTC, datetime

    from telehealth import clock
    from telehealth.consults.models import Consult

    clock.freeze(datetime(2026, 11, 25, hour, 0, tzinfo=UTC))
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "Demo consults: 6" in result.output
    states = {c.patient_ref: (c.status.value, c.specialist.email if c.specialist else None)
              for c in db.session.scalars(db.select(Consult))}
    assert states["GOMA-0042"] == ("closed", "claire.martin@example.org")
    assert states["GULU-0117"] == ("accepted", "wanjiru.kamau@example.org")
    assert states["TRP-0009"] == ("answered", "omar.haddad@example.org")
    assert states["HYO-0003"] == ("draft", None)
    for waiting in ("GOMA-0057", "CHK-0031"):
        assert states[waiting][0] in ("offered", "escalated"), states[waiting]
    # The surveillance officers find Goma's reports and the rash cluster's alert.
    from telehealth.surveillance.models import Alert, WeeklyReport

    assert db.session.scalar(db.select(db.func.count(WeeklyReport.id))) == 8
    alerts = list(db.session.scalars(db.select(Alert)))
    assert alerts and {a.syndrome.code for a in alerts} == {"measles_rash"}
    assert "Goma" in {a.area.name for a in alerts}
    officer = app.test_client()
    officer.post("/login", data={"email": "epi.kivu@example.org", "password": "telehealth-demo"})
    page = officer.get(f"/surveillance/alerts/{alerts[0].id}").text
    assert 'id="no-line-list"' in page  # an empty line list says why
    # The columns line up whatever the longest role's name ("surveillance_officer").
    lines = [line for line in result.output.splitlines() if "@example.org" in line]
    assert len({line.index(line.split()[1]) for line in lines}) == 1


def test_demo_consult_reaches_a_specialist(app, make_consult):
    """In the demo world a clinician's consult is offered at once, never left unmatched."""
    from datetime import UTC, datetime

    from telehealth import clock

    clock.freeze(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))  # daytime in Lyon and Lisbon
    assert app.test_cli_runner().invoke(args=["seed-demo"]).exit_code == 0
    marie = db.session.scalar(db.select(User).where(User.email == "marie.kabila@example.org"))
    for urgency in ("routine", "urgent", "emergency"):
        consult = make_consult(marie, urgency=urgency, languages=["fr"])
        assert consult.status.value == "offered", urgency
