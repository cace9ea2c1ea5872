"""Set-password links: an imported specialist gets a one-time link, sets a password, signs in."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from telehealth import clock
from telehealth.accounts.models import Role, User
from telehealth.audit.models import AuditEvent
from telehealth.extensions import db
from telehealth.roster.services import has_password
from tests.notifications.test_notifications import smtp_server  # noqa: F401 - a fixture
from tests.roster.test_csv import _csv, _row, _upload

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NEW_PASSWORD = "my own long password"
LINK = re.compile(r"<code>https?://[^/]+(/signup/[\w-]+)</code>")


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(NOW)


def _import(client, auth, coordinator, make_specialty, rows=None):
    make_specialty("cardiology"), make_specialty("dermatology")
    auth.login(coordinator)
    response = _upload(client, _csv(rows or [_row(1), _row(2, languages="pt:3 en:1")]))
    assert response.status_code == 302, response.text
    return response


def _user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def _links(page: str) -> list[str]:
    return LINK.findall(page)


def _actions() -> list[str]:
    return [e.action for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_imported_specialist_sets_a_password_and_signs_in(client, auth, world, make_specialty):
    _import(client, auth, world["coordinator"], make_specialty)
    doc = _user("doc1@example.org")
    assert not has_password(doc)
    auth.logout()
    assert auth.login("doc1@example.org", NEW_PASSWORD).status_code == 401  # cannot sign in

    auth.login(world["coordinator"])
    profile = client.get(f"/roster/{doc.id}").text
    assert "has no password yet" in profile and "Create a set-password link" in profile
    page = client.post(f"/roster/{doc.id}/password-link")
    assert page.status_code == 200 and "no-store" in page.headers["Cache-Control"]
    [link] = _links(page.text)
    assert "doc1@example.org" in page.text
    assert "A set-password link was created" in client.get(f"/roster/{doc.id}").text
    auth.logout()

    form = client.get(link)
    assert form.status_code == 200
    assert "doc1@example.org" in form.text and 'value="Dr 1"' in form.text
    assert "Specialties" not in form.text  # the account exists: only the password is asked
    short = client.post(link, data={"name": "Dr 1", "timezone": doc.timezone,
                                    "password": "short"})
    assert short.status_code == 400
    bad_zone = client.post(link, data={"name": "Dr 1", "timezone": "Mars/Olympus",
                                       "password": NEW_PASSWORD})
    assert bad_zone.status_code == 400 and "Unknown time zone" in bad_zone.text
    done = client.post(link, data={"name": "Dr Amina One", "timezone": "Africa/Kinshasa",
                                   "password": NEW_PASSWORD})
    assert done.status_code == 302 and done.headers["Location"].endswith("/login")

    doc = _user("doc1@example.org")
    assert has_password(doc) and doc.name == "Dr Amina One" and doc.timezone == "Africa/Kinshasa"
    assert doc.role == Role.SPECIALIST
    signed_in = auth.login("doc1@example.org", NEW_PASSWORD)
    assert signed_in.status_code == 302
    assert client.get(f"/roster/{doc.id}").status_code == 200  # their own profile
    assert {"roster.password_link_created", "roster.password_set"} <= set(_actions())
    auth.logout()

    # Used once: the link now refuses, and cannot change the password again.
    assert client.get(link).status_code == 409
    again = client.post(link, data={"name": "X", "timezone": "UTC",
                                    "password": "somebody else's pass"})
    assert again.status_code == 409 and "already been used" in again.text
    assert auth.login("doc1@example.org", NEW_PASSWORD).status_code == 302


def test_expired_and_replaced_links_are_refused(client, auth, world, make_specialty):
    _import(client, auth, world["coordinator"], make_specialty)
    doc = _user("doc1@example.org")
    [first] = _links(client.post(f"/roster/{doc.id}/password-link").text)
    [second] = _links(client.post(f"/roster/{doc.id}/password-link").text)
    auth.logout()
    # A new link replaces the old one.
    replaced = client.get(first)
    assert replaced.status_code == 409 and "expired" in replaced.text
    assert client.get(second).status_code == 200

    clock.freeze(NOW + timedelta(hours=73))  # INVITE_EXPIRY_HOURS is 72
    expired = client.post(second, data={"name": "Dr 1", "timezone": "UTC",
                                        "password": NEW_PASSWORD})
    assert expired.status_code == 409 and "expired" in expired.text
    assert not has_password(_user("doc1@example.org"))
    assert client.get("/signup/not-a-token").status_code == 404


def test_bulk_links_after_an_import(client, auth, world, make_specialty):
    _import(client, auth, world["coordinator"], make_specialty)
    roster = client.get("/roster").text
    assert "2 specialists have no password and no link to set one yet." in roster
    page = client.post("/roster/password-links")
    assert page.status_code == 200
    links = _links(page.text)
    assert len(links) == 2  # world's specialists have passwords: only the imported ones
    # Everyone now has a link waiting: nothing more to create, and the notice is gone.
    assert "no link to set one" not in client.get("/roster").text
    assert client.post("/roster/password-links").status_code == 302
    auth.logout()
    for link in links:
        assert client.get(link).status_code == 200


def test_a_specialist_with_a_password_gets_no_link(client, auth, world):
    auth.login(world["coordinator"])
    specialist = world["specialist"]
    assert "has no password yet" not in client.get(f"/roster/{specialist.id}").text
    response = client.post(f"/roster/{specialist.id}/password-link")
    assert response.status_code == 302
    assert "already has a password" in client.get(response.headers["Location"]).text
    assert "roster.password_link_created" not in _actions()


@pytest.mark.parametrize("role", ["clinician", "specialist"])
def test_only_coordinators_and_admins_create_links(client, auth, world, make_specialty, role):
    _import(client, auth, world["coordinator"], make_specialty)
    auth.logout()
    doc = _user("doc1@example.org")
    auth.login(world[role])
    assert client.post(f"/roster/{doc.id}/password-link").status_code == 403
    assert client.post("/roster/password-links").status_code == 403
    auth.logout()
    assert client.post("/roster/password-links").status_code == 302  # to the sign-in page
    assert "roster.password_link_created" not in _actions()


def test_admin_creates_a_link_too(client, auth, world, make_specialty):
    _import(client, auth, world["coordinator"], make_specialty)
    auth.logout()
    auth.login(world["admin"])
    assert len(_links(client.post(f"/roster/{_user('doc2@example.org').id}/password-link")
                      .text)) == 1


def test_the_link_is_emailed_in_the_recipients_language(client, auth, world, make_specialty,
                                                        smtp_server):  # noqa: F811
    _import(client, auth, world["coordinator"], make_specialty)
    doc = _user("doc2@example.org")  # reads Portuguese best
    response = client.post(f"/roster/{doc.id}/password-link")
    assert response.status_code == 302
    assert "e-mailed" in client.get(response.headers["Location"]).text
    assert smtp_server.received.wait(5)
    [(recipients, message)] = smtp_server.messages
    assert recipients == ["doc2@example.org"]
    assert message["Subject"] == "Defina a sua palavra-passe do Telehealth"
    body = message.get_payload(decode=True).decode()
    [path] = re.findall(r"https?://[^/\s]+(/signup/[\w-]+)", body)
    auth.logout()
    assert client.post(path, data={"name": "Dr 2", "timezone": "Europe/Lisbon",
                                   "password": NEW_PASSWORD}).status_code == 302
    assert auth.login("doc2@example.org", NEW_PASSWORD).status_code == 302
