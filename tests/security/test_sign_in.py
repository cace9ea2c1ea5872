"""Sign-in: limits per account and per address, the same answer for every failure, audit, TOTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from telehealth import clock
from telehealth.accounts import services as accounts
from telehealth.accounts.models import Role
from telehealth.audit.models import AuditEvent
from telehealth.crypto import open_secret
from telehealth.extensions import db
from tests.conftest import PASSWORD

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
BLOCKED = "Too many sign-in attempts"


def _login(client, email, password, ip="10.0.0.1"):
    return client.post("/login", data={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": ip})


def _actions(name):
    return db.session.scalars(db.select(AuditEvent).where(AuditEvent.action == name)).all()


def test_account_is_blocked_after_repeated_failures_even_with_the_right_password(client, world):
    clock.freeze(T0)
    email = world["clinician"].email
    for _attempt in range(5):
        assert _login(client, email, "wrong password").status_code == 401
    response = _login(client, email, PASSWORD)
    assert response.status_code == 429
    assert BLOCKED in response.text
    assert int(response.headers["Retry-After"]) > 0
    # Another address does not help: the limit is per account too.
    assert _login(client, email, PASSWORD, ip="10.9.9.9").status_code == 429
    clock.freeze(T0 + timedelta(minutes=16))
    assert _login(client, email, PASSWORD).status_code == 302


def test_address_is_blocked_when_it_tries_many_accounts(app, client, world, monkeypatch):
    monkeypatch.setitem(app.config, "SIGN_IN_MAX_FAILURES_PER_ADDRESS", 3)
    for n in range(3):
        assert _login(client, f"nobody{n}@example.org", "guess").status_code == 401
    response = _login(client, world["clinician"].email, PASSWORD)
    assert response.status_code == 429 and BLOCKED in response.text
    assert _login(client, world["clinician"].email, PASSWORD, ip="10.0.0.2").status_code == 302


def test_success_clears_the_account_count(client, world):
    email = world["clinician"].email
    for _attempt in range(4):
        _login(client, email, "wrong password")
    assert _login(client, email, PASSWORD).status_code == 302
    client.post("/logout")
    for _attempt in range(4):
        assert _login(client, email, "wrong password").status_code == 401


def test_unknown_user_and_wrong_password_get_the_same_answer_and_work(client, world,
                                                                       monkeypatch):
    calls = []
    real_verify = accounts._verify

    def counting_verify(password_hash, password):
        calls.append(password_hash)
        return real_verify(password_hash, password)

    monkeypatch.setattr(accounts, "_verify", counting_verify)
    unknown = _login(client, "nobody@example.org", "whatever")
    wrong = _login(client, world["clinician"].email, "whatever")
    assert unknown.status_code == wrong.status_code == 401
    assert "Wrong e-mail or password." in unknown.text and "Wrong e-mail or password." in wrong.text
    # One Argon2 verification each (the unknown e-mail checks a dummy hash): similar timing.
    assert len(calls) == 2
    assert calls[0].startswith("$argon2id$") and calls[1].startswith("$argon2id$")


def test_every_attempt_is_audited_with_its_address(client, world):
    _login(client, "nobody@example.org", "x", ip="10.1.1.1")
    _login(client, world["clinician"].email, "x", ip="10.1.1.2")
    _login(client, world["clinician"].email, PASSWORD, ip="10.1.1.3")
    failed = _actions("login.failed")
    assert [e.ip for e in failed] == ["10.1.1.1", "10.1.1.2"]
    assert failed[0].actor_id is None and failed[1].actor_id == world["clinician"].id
    (succeeded,) = _actions("login.succeeded")
    assert succeeded.ip == "10.1.1.3"


def test_blocked_attempts_are_audited(client, world):
    for _attempt in range(6):
        _login(client, world["clinician"].email, "x")
    assert len(_actions("login.blocked")) == 1


# ---------------------------------------------------------------- second factor


def _enable_totp(user):
    secret = pyotp.random_base32()
    user.totp_secret = secret  # sealed on assignment
    db.session.commit()
    return pyotp.TOTP(secret)


def test_totp_user_needs_a_code_and_a_code_works_once(app, client, world):
    clock.freeze(T0)
    user = world["coordinator"]
    totp = _enable_totp(user)
    response = _login(client, user.email, PASSWORD)
    assert response.headers["Location"].endswith("/login/code")
    assert "/login" in client.get("/").headers["Location"]  # not signed in yet
    assert client.post("/login/code", data={"code": "000000"}).status_code == 401
    code = totp.at(T0)
    assert client.post("/login/code", data={"code": code}).status_code == 302
    assert client.get("/").status_code == 200
    client.post("/logout")
    # The same code again (a replay) is refused.
    _login(client, user.email, PASSWORD)
    assert client.post("/login/code", data={"code": code}).status_code == 401
    clock.freeze(T0 + timedelta(seconds=30))
    assert client.post("/login/code", data={"code": totp.at(T0 + timedelta(seconds=30))}
                       ).status_code == 302


def test_totp_guessing_counts_towards_the_limit(client, world):
    user = world["coordinator"]
    _enable_totp(user)
    _login(client, user.email, PASSWORD)
    for _attempt in range(5):
        assert client.post("/login/code", data={"code": "123456"}).status_code in (401, 302)
    assert client.post("/login/code", data={"code": "123456"}).status_code == 429


def test_roles_that_require_totp_must_turn_it_on_first(app, client, world, monkeypatch):
    monkeypatch.setitem(app.config, "TOTP_REQUIRED_ROLES", ["admin", "coordinator"])
    clock.freeze(T0)
    admin = world["admin"]
    _login(client, admin.email, PASSWORD)
    response = client.get("/admin/users")
    assert response.headers["Location"].endswith("/account/two-factor")
    assert client.get("/api/consults").status_code == 403
    page = client.get("/account/two-factor").text
    secret = page.split('id="totp-secret">')[1].split("<")[0]
    assert client.post("/account/two-factor", data={"code": "000000"}).status_code == 400
    response = client.post("/account/two-factor", data={"code": pyotp.TOTP(secret).at(T0)})
    assert response.status_code == 302
    assert client.get("/admin/users").status_code == 200
    db.session.refresh(admin)
    assert open_secret(admin.totp_secret) == secret
    assert _actions("totp.enabled")


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.SPECIALIST])
def test_totp_stays_optional_for_other_roles(app, client, world, monkeypatch, role):
    monkeypatch.setitem(app.config, "TOTP_REQUIRED_ROLES", ["admin", "coordinator"])
    user = world["clinician" if role == Role.CLINICIAN else "specialist"]
    _login(client, user.email, PASSWORD)
    assert client.get("/").status_code == 200


def test_old_attempts_are_forgotten_but_stay_in_the_audit_trail(client, world):
    from telehealth.security.models import SignInAttempt

    clock.freeze(T0)
    _login(client, world["clinician"].email, "x")
    clock.freeze(T0 + timedelta(days=2))
    _login(client, world["clinician"].email, "y")
    attempts = db.session.scalars(db.select(SignInAttempt)).all()
    assert [a.at for a in attempts] == [T0 + timedelta(days=2)]
    assert len(_actions("login.failed")) == 2


def test_the_address_behind_a_trusted_proxy_is_the_client_s():
    from flask import Flask, request

    from telehealth.security import trust_proxies

    bare = Flask(__name__)
    bare.add_url_rule("/ip", "ip", lambda: request.remote_addr or "")
    trust_proxies(bare, 1)
    response = bare.test_client().get("/ip", headers={"X-Forwarded-For": "203.0.113.9"},
                                      environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert response.text == "203.0.113.9"


def test_an_admin_can_turn_off_a_lost_second_factor(app, client, world):
    user = world["coordinator"]
    _enable_totp(user)
    victim = app.test_client()
    _login(victim, user.email, PASSWORD)  # half-way: waiting for the code
    _login(client, world["admin"].email, PASSWORD)
    assert "reset-two-factor" in client.get(f"/admin/users/{user.id}").text
    response = client.post(f"/admin/users/{user.id}/two-factor/reset")
    assert response.status_code == 302
    db.session.refresh(user)
    assert user.totp_secret is None and _actions("totp.reset")
    # The half-finished sign-in is void; a new one needs only the password.
    assert "/login" in victim.post("/login/code", data={"code": "123456"}).headers["Location"]
    assert _login(app.test_client(), user.email, PASSWORD).headers["Location"] == "/"
