"""Sign-in throttling after OWASP: brute force is slowed, a stranger cannot lock a person out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from telehealth import clock
from telehealth.security.services import DEVICE_COOKIE
from tests.conftest import PASSWORD

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def _login(client, email, password, ip):
    return client.post("/login", data={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": ip})


def test_a_stranger_cannot_lock_a_person_out_of_their_own_computer(app, client, world):
    clock.freeze(T0)
    email = world["specialist"].email
    # The specialist has signed in on this computer before: it holds a known-device cookie.
    assert _login(client, email, PASSWORD, "10.0.0.1").status_code == 302
    cookie = client.get_cookie(DEVICE_COOKIE)
    assert cookie is not None and email not in cookie.value
    client.post("/logout")
    clock.freeze(T0 + timedelta(minutes=1))
    stranger = app.test_client()
    for _attempt in range(25):
        _login(stranger, email, "guess", "10.6.6.6")
    # The stranger is refused, even with the right password now...
    refused = _login(stranger, email, PASSWORD, "10.6.6.6")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    # ...and the person on their own computer signs in at once.
    assert _login(client, email, PASSWORD, "10.0.0.1").status_code == 302


def test_brute_force_waits_longer_after_each_failure(app, world):
    clock.freeze(T0)
    email = world["clinician"].email
    attacker = app.test_client()
    for _attempt in range(5):
        assert _login(attacker, email, "guess", "10.6.6.6").status_code == 401
    waits = []
    for _round in range(4):
        refused = _login(attacker, email, PASSWORD, "10.6.6.7")
        assert refused.status_code == 429  # the right password does not pass the delay
        wait = int(refused.headers["Retry-After"])
        waits.append(wait)
        clock.freeze(clock.now() + timedelta(seconds=wait))
        assert _login(attacker, email, "guess", "10.6.6.7").status_code == 401
    assert waits == sorted(waits) and waits[-1] > waits[0] * 4  # 1, 2, 4, 8 minutes
    assert max(waits) <= app.config["SIGN_IN_WINDOW_MINUTES"] * 60 + 1


def test_guessing_on_a_known_device_slows_that_device(app, client, world):
    clock.freeze(T0)
    email = world["clinician"].email
    assert _login(client, email, PASSWORD, "10.0.0.1").status_code == 302
    client.post("/logout")
    clock.freeze(T0 + timedelta(minutes=1))
    for _attempt in range(5):
        assert _login(client, email, "guess", "10.0.0.1").status_code == 401
    assert _login(client, email, PASSWORD, "10.0.0.1").status_code == 429
    # Another computer of the person's (never the stranger's doing) is not slowed by it.
    assert _login(app.test_client(), email, PASSWORD, "10.0.0.2").status_code == 302


def test_a_forged_device_cookie_is_no_exemption(app, client, world):
    clock.freeze(T0)
    email = world["clinician"].email
    client.set_cookie(DEVICE_COOKIE, "eyJmYWtlIjoiZGV2aWNlIn0.forged.sig")
    for _attempt in range(5):
        _login(client, email, "guess", "10.6.6.6")
    assert _login(client, email, PASSWORD, "10.6.6.6").status_code == 429
