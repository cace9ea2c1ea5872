"""The rough edges a newcomer hit: stored values the app cannot use, huge ids, API limits."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import update

from telehealth.accounts.models import Role, User
from telehealth.consults.models import Consult, ConsultStatus
from telehealth.extensions import db
from tests.conftest import take_consult

HUGE = "99999999999999999999"


def _store_raw(user: User, **values: str) -> None:
    """Write a value past the validators, as an old row or a hand edit would have."""
    db.session.execute(update(User).where(User.id == user.id).values(**values))
    db.session.commit()
    db.session.expire_all()


def test_unknown_stored_zone_and_locale_never_break_a_page(client, auth, world, make_consult,
                                                            caplog):
    consult = make_consult(world["clinician"])
    coordinator = world["coordinator"]
    _store_raw(coordinator, timezone="Europe/Geneva", locale="xx")
    auth.login(coordinator)
    with caplog.at_level(logging.WARNING):
        for path in ("/", f"/consults/{consult.id}", f"/consults/{consult.id}/matching",
                     "/roster", "/account/preferences"):
            response = client.get(path)
            assert response.status_code == 200, path
    assert "Europe/Geneva" in caplog.text  # the log line names what it could not use
    assert "'xx'" in caplog.text


def test_an_administrator_repairs_a_stored_zone(client, auth, world):
    clinician = world["clinician"]
    _store_raw(clinician, timezone="Mars/Olympus")
    auth.login(world["admin"])
    page = client.get(f"/admin/users/{clinician.id}")
    assert page.status_code == 200
    assert 'name="timezone"' in page.text
    form = {"role": "clinician", "clinic": str(clinician.clinic_id), "active": "y",
            "timezone": "Africa/Kinshasa", "locale": "fr"}
    bad = client.post(f"/admin/users/{clinician.id}", data={**form, "timezone": "Nowhere/X"})
    assert bad.status_code == 400
    assert client.post(f"/admin/users/{clinician.id}", data=form).status_code == 302
    db.session.expire_all()
    repaired = db.session.get(User, clinician.id)
    assert (repaired.timezone, repaired.locale) == ("Africa/Kinshasa", "fr")


def test_seed_data_passes_the_form_validators(app):
    from telehealth.accounts.services import create_user
    from telehealth.cli import seed_demo
    from telehealth.errors import InvalidInput

    with pytest.raises(InvalidInput):
        create_user(email="x@example.org", name="X", password="long enough pw",
                    role=Role.ADMIN,
                    timezone="Europe/Geneva")
    db.session.rollback()
    seed_demo()  # raises if any demo zone, language or value is refused
    db.session.rollback()


def test_ids_beyond_64_bits_are_not_found(client, auth, world, make_consult):
    consult = make_consult(world["clinician"])
    take_consult(consult, world["specialist"])
    auth.login(world["clinician"])
    paths = [("GET", f"/consults/{HUGE}"), ("GET", f"/api/consults/{HUGE}"),
             ("GET", f"/attachments/{HUGE}"), ("POST", f"/consults/{HUGE}/notes"),
             ("POST", f"/notes/{HUGE}/amend"), ("GET", f"/consults/{HUGE}/call"),
             ("GET", f"/consults/{HUGE}/diagnoses"),
             ("POST", f"/consults/{consult.id}/diagnoses/{HUGE}/remove"),
             ("POST", f"/consults/{consult.id}/call/proposals/{HUGE}/agree"),
             ("POST", f"/api/consults/{HUGE}/cancel"), ("GET", f"/roster/{HUGE}"),
             ("GET", f"/consults/{2**63}"), ("GET", f"/consults/{2**31}"),
             ("GET", f"/consults/{2**31 - 1}")]
    for method, path in paths:
        response = client.open(path, method=method)
        assert response.status_code == 404, (method, path, response.status_code)
    assert client.get(f"/api/consults/{HUGE}").json["status"] == 404


@pytest.mark.parametrize("field", ["outcome_note", "reason"])
def test_api_refuses_what_the_form_refuses(client, auth, world, make_consult, field):
    consult = make_consult(world["clinician"])
    take_consult(consult, world["specialist"])
    db.session.execute(update(Consult).where(Consult.id == consult.id)
                       .values(status=ConsultStatus.ANSWERED))
    db.session.commit()
    auth.login(world["clinician"])
    action = "close" if field == "outcome_note" else "cancel"
    if action == "cancel":  # cancel an open consult instead
        db.session.execute(update(Consult).where(Consult.id == consult.id)
                           .values(status=ConsultStatus.ACCEPTED))
        db.session.commit()
    body = {"outcome": "referred", field: "x" * 200_000}
    response = client.post(f"/api/consults/{consult.id}/{action}", json=body)
    assert response.status_code == 422
    assert response.is_json
    assert field in response.json["fields"]
    db.session.expire_all()
    stored = db.session.get(Consult, consult.id)
    assert stored.status in (ConsultStatus.ANSWERED, ConsultStatus.ACCEPTED)
    # The page's form refuses the same, with the same rule.
    page = client.post(f"/consults/{consult.id}/{action}", data=body)
    assert page.status_code in (400, 422)
    db.session.expire_all()
    assert db.session.get(Consult, consult.id).status == stored.status
    assert not db.session.get(Consult, consult.id).outcome_note


def test_api_errors_are_json(client, auth, world, make_consult):
    consult = make_consult(world["clinician"])
    unauthenticated = client.get("/api/consults")
    assert unauthenticated.status_code == 401
    assert unauthenticated.json["status"] == 401
    assert client.post(f"/api/consults/{consult.id}/accept").status_code == 401
    # A person still gets the sign-in page.
    assert client.get(f"/consults/{consult.id}").status_code == 302
    auth.login(world["other_clinician"])
    assert client.get(f"/api/consults/{consult.id}").json["status"] == 404
    auth.logout()
    auth.login(world["clinician"])
    refused = client.post(f"/api/consults/{consult.id}/accept")
    assert refused.status_code == 403 and refused.is_json
    conflict = client.post(f"/api/consults/{consult.id}/close", json={"outcome": "referred"})
    assert conflict.status_code == 409 and conflict.is_json
    bad = client.post(f"/api/consults/{consult.id}/close", json={"outcome": "cured?"})
    assert bad.status_code == 422 and "outcome" in bad.json["fields"]


def test_a_body_over_the_request_limit_is_a_json_413(app, client, auth, world, make_consult,
                                                      monkeypatch):
    consult = make_consult(world["clinician"])
    auth.login(world["clinician"])
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 10_000)
    response = client.post(f"/api/consults/{consult.id}/cancel",
                           json={"reason": "x" * 20_000})
    assert response.status_code == 413
    assert response.json["status"] == 413
