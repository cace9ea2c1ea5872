"""Sessions end when they should: sign-out, password/role change, deactivation, idle time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from telehealth import clock
from telehealth.accounts.models import Role
from telehealth.accounts.services import update_user
from telehealth.audit.models import AuditEvent
from telehealth.extensions import db
from tests.conftest import PASSWORD

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def _copied_cookie(client):
    return client.get_cookie("session").value


def _replay(app, cookie):
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other.get("/")


def _is_sign_in_page(response):
    return response.status_code == 302 and "/login" in response.headers["Location"]


def test_copied_cookie_is_dead_after_sign_out(app, client, auth, world):
    auth.login(world["clinician"])
    cookie = _copied_cookie(client)
    assert _replay(app, cookie).status_code == 200
    auth.logout()
    assert _is_sign_in_page(_replay(app, cookie))


def test_password_change_ends_other_sessions_but_keeps_this_one(app, client, auth, world):
    auth.login(world["clinician"])
    stolen = _copied_cookie(client)
    response = client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": "a brand new secret",
        "confirm": "a brand new secret"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert _is_sign_in_page(_replay(app, stolen))


@pytest.mark.parametrize("change", ["role", "deactivate"])
def test_role_change_and_deactivation_end_every_session(app, client, auth, world, change):
    user = world["clinician"]
    auth.login(user)
    cookie = _copied_cookie(client)
    if change == "role":
        update_user(user, role=Role.COORDINATOR, active=True, clinic=None)
    else:
        update_user(user, role=user.role, active=False, clinic=user.clinic)
    db.session.commit()
    assert _is_sign_in_page(client.get("/"))
    assert _is_sign_in_page(_replay(app, cookie))


def test_idle_session_is_signed_out_after_the_time_out(client, auth, world):
    clock.freeze(T0)
    auth.login(world["clinician"])
    clock.freeze(T0 + timedelta(minutes=29))
    assert client.get("/").status_code == 200  # activity keeps it alive
    clock.freeze(T0 + timedelta(minutes=29 + 31))
    response = client.get("/consults/new")
    assert _is_sign_in_page(response)
    assert "next=" in response.headers["Location"]
    page = client.get(response.headers["Location"]).text
    assert "signed out after 30 minutes without activity" in page
    assert _is_sign_in_page(client.get("/"))
    assert db.session.scalar(db.select(AuditEvent).where(
        AuditEvent.action == "session.timed_out")) is not None


def test_idle_time_out_is_configurable_and_answers_json_for_the_api(app, client, auth, world,
                                                                    monkeypatch):
    monkeypatch.setitem(app.config, "IDLE_TIMEOUT_MINUTES", 5)
    clock.freeze(T0)
    auth.login(world["clinician"])
    clock.freeze(T0 + timedelta(minutes=6))
    response = client.get("/api/consults")
    assert response.status_code == 401
    assert "without activity" in response.json["error"]


def test_remember_me_is_off_by_default(client, world):
    response = client.post("/login", data={"email": world["clinician"].email,
                                           "password": PASSWORD, "remember": "y"})
    assert response.status_code == 302
    assert client.get_cookie("remember_token") is None


def test_remember_me_when_enabled_lasts_no_longer_than_configured(app, client, world,
                                                                 monkeypatch):
    monkeypatch.setitem(app.config, "REMEMBER_ME_ENABLED", True)
    monkeypatch.setitem(app.config, "REMEMBER_COOKIE_DURATION", timedelta(hours=8))
    response = client.post("/login", data={"email": world["clinician"].email,
                                           "password": PASSWORD, "remember": "y"})
    cookie = client.get_cookie("remember_token")
    assert cookie is not None and cookie.http_only
    assert cookie.expires is not None
    assert cookie.expires - datetime.now(UTC) <= timedelta(hours=8, minutes=1)
    assert "HttpOnly" in response.headers.getlist("Set-Cookie")[-1]


def test_session_cookie_flags(app, client, world, monkeypatch):
    response = client.post("/login", data={"email": world["clinician"].email,
                                           "password": PASSWORD})
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "HttpOnly" in header and "SameSite=Lax" in header
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", True)
    other = app.test_client()
    response = other.post("/login", data={"email": world["specialist"].email,
                                          "password": PASSWORD})
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "Secure" in header
