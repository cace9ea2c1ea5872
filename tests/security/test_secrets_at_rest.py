"""TOTP secrets at rest: encrypted in the database, readable with the key ring, rotatable."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pyotp
import pytest
from sqlalchemy import text

from telehealth import clock, crypto
from telehealth.extensions import db
from tests.conftest import PASSWORD, another_app

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
KEY_A = crypto.new_data_key()
KEY_B = crypto.new_data_key()
UNREADABLE = "cannot be checked at the moment"


def _stored(user) -> str:
    return db.session.execute(text("SELECT totp_secret FROM users WHERE id = :id"),
                              {"id": user.id}).scalar_one()


def _enable_totp(user) -> pyotp.TOTP:
    secret = pyotp.random_base32()
    user.totp_secret = secret
    db.session.commit()
    return pyotp.TOTP(secret)


def _sign_in(client, user, totp: pyotp.TOTP):
    """Password then code; the code step's response."""
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.headers["Location"].endswith("/login/code")
    return client.post("/login/code", data={"code": totp.at(clock.now())})


@pytest.fixture()
def keys(app, monkeypatch):
    """Set the data key and the old keys of the session app for one test."""

    def use(current: str | None, old: list[str] | None = None) -> None:
        monkeypatch.setitem(app.config, "DATA_KEY", current)
        monkeypatch.setitem(app.config, "DATA_OLD_KEYS", old or [])

    return use


def test_the_database_holds_ciphertext_and_sign_in_with_a_code_works(client, world, keys):
    keys(KEY_A)
    clock.freeze(T0)
    user = world["coordinator"]
    totp = _enable_totp(user)
    stored = _stored(user)
    assert totp.secret not in stored and len(stored) > 100
    assert crypto.open_secret(crypto.Sealed(stored)) == totp.secret
    # Two seals of one secret differ (random IV): equal secrets do not show in a dump.
    assert crypto.seal(totp.secret).token != crypto.seal(totp.secret).token
    assert _sign_in(client, user, totp).status_code == 302
    assert client.get("/").status_code == 200


def test_without_a_data_key_the_key_is_derived_from_secret_key(app, world, keys, monkeypatch):
    keys(None)
    user = world["coordinator"]
    totp = _enable_totp(user)
    assert crypto.open_secret(user.totp_secret) == totp.secret
    # A new SECRET_KEY alone cannot read it; listing the old one as an old key can.
    old_secret_key = app.config["SECRET_KEY"]
    monkeypatch.setitem(app.config, "SECRET_KEY", "another secret key")
    with pytest.raises(crypto.SecretUnreadable):
        crypto.open_secret(user.totp_secret)
    keys(None, [old_secret_key])
    assert crypto.open_secret(user.totp_secret) == totp.secret


def test_a_wrong_key_refuses_the_second_step_clearly(client, world, keys, caplog):
    keys(KEY_A)
    clock.freeze(T0)
    user = world["coordinator"]
    totp = _enable_totp(user)
    keys(KEY_B)
    caplog.set_level(logging.ERROR, logger="telehealth.security.services")
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.headers["Location"].endswith("/login/code")  # not skipped
    page = client.get("/login/code")
    assert page.status_code == 503 and UNREADABLE in page.text
    assert "contact an administrator" in page.text
    response = client.post("/login/code", data={"code": totp.at(T0)})
    assert response.status_code == 503 and UNREADABLE in response.text
    assert "/login" in client.get("/").headers["Location"]  # still not signed in
    assert f"user {user.id}: no configured data key decrypts the TOTP secret" in caplog.text
    # With the right key back, the same code works.
    keys(KEY_A)
    assert client.post("/login/code", data={"code": totp.at(T0)}).status_code == 302


def test_old_keys_read_until_rotation_re_encrypts_under_the_current_key(app, client, world,
                                                                         keys):
    keys(KEY_A)
    clock.freeze(T0)
    user, other = world["coordinator"], world["admin"]
    totp = _enable_totp(user)
    _enable_totp(other)
    before = _stored(user)
    keys(KEY_B, [KEY_A])
    assert crypto.open_secret(user.totp_secret) == totp.secret  # the old key still reads

    result = app.test_cli_runner().invoke(args=["security", "rotate-secrets"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 2 secrets" in result.output
    after = _stored(user)
    assert after != before and totp.secret not in after
    keys(KEY_B)  # the old key is gone: the rotated secret still opens
    assert crypto.open_secret(crypto.Sealed(after)) == totp.secret
    assert _sign_in(client, user, totp).status_code == 302


def test_rotation_lists_what_no_key_opens_and_leaves_it(app, world, keys):
    keys(KEY_A)
    user = world["coordinator"]
    _enable_totp(user)
    before = _stored(user)
    keys(KEY_B)
    result = app.test_cli_runner().invoke(args=["security", "rotate-secrets"])
    assert result.exit_code == 1
    assert f"users.totp_secret id={user.id}" in result.output
    assert _stored(user) == before


def test_a_malformed_data_key_stops_the_start():
    with pytest.raises(crypto.KeyConfigError, match="TELEHEALTH_DATA_KEY"):
        another_app({"DATA_KEY": "not-a-key", "TESTING": True,
                     "SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_new_data_key_prints_a_usable_key(app):
    result = app.test_cli_runner().invoke(args=["security", "new-data-key"])
    assert result.exit_code == 0
    assert crypto._fernet_key(result.output.strip()) is not None
