"""Times and numbers in each reader's locale and time zone; the language switcher."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from telehealth import clock
from telehealth.accounts.models import Role, User
from telehealth.extensions import db
from telehealth.i18n.formatting import (
    language_name,
    local_call_time,
    local_datetime,
    local_number,
    relative_time,
)
from telehealth.notes.services import add_note
from tests.conftest import take_consult
from tests.i18n.helpers import browser

MOMENT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("locale", "zone", "expected"), [
    ("en", "Asia/Tokyo", "Mar 2, 2026, 9:00:00\u202fPM"),
    ("fr", "Africa/Kinshasa", "2 mars 2026, 13:00:00"),
    ("pt", "America/Sao_Paulo", "2 de mar. de 2026 09:00:00"),
    ("sw", "Africa/Nairobi", "2 Mac 2026 15:00:00"),
])
def test_one_moment_in_each_readers_zone_and_locale(locale, zone, expected):
    assert local_datetime(MOMENT, locale, zone) == expected


@pytest.mark.parametrize(("locale", "zone", "expected"), [
    ("fr", "Africa/Kinshasa", "lundi 2 mars 2026, 13:00 (Kinshasa)"),
    ("en", "Asia/Tokyo", "Monday, March 2, 2026, 9:00\u202fPM (Tokyo)"),
    ("sw", "Africa/Nairobi", "Jumatatu, 2 Machi 2026 15:00 (Nairobi)"),
    ("en", "UTC", "Monday, March 2, 2026, 12:00\u202fPM (UTC)"),
])
def test_a_call_time_names_the_day_and_the_readers_zone(locale, zone, expected):
    assert local_call_time(MOMENT, locale, zone) == expected


def test_arabic_time_uses_arabic_day_period():
    shown = local_datetime(MOMENT, "ar", "Asia/Tokyo")
    assert "9:00:00" in shown and "م" in shown  # 9 in the evening: مساءً


@pytest.mark.parametrize(("locale", "expected"), [
    ("en", "3 hours ago"), ("fr", "il y a 3 heures"), ("es", "hace 3 horas"),
    ("pt", "há 3 horas"), ("sw", "saa 3 zilizopita"), ("ar", "قبل 3 ساعات"),
])
def test_relative_times(locale, expected):
    assert relative_time(MOMENT, locale, now=MOMENT + timedelta(hours=3)) == expected


def test_numbers_and_language_names():
    assert local_number(1234.5, "fr") == "1\u202f234,5"
    assert local_number(1234.5, "en") == "1,234.5"
    assert language_name("fr", "en") == "French"
    assert language_name("fr", "ar") == "الفرنسية"
    assert language_name("pt-BR", "fr") == "portugais"


def test_tokyo_and_kinshasa_see_the_same_note_at_their_own_time(
        app, world, make_consult, make_user):
    clinician: User = world["clinician"]
    clinician.timezone, clinician.locale = "Africa/Kinshasa", "fr"
    specialist = make_user(Role.SPECIALIST, timezone="Asia/Tokyo", locale="en")
    consult = make_consult(clinician)
    take_consult(consult, specialist)
    clock.freeze(MOMENT)
    note = add_note(consult, clinician, "Le patient va mieux ce matin.")
    db.session.commit()
    clock.freeze(MOMENT + timedelta(hours=3))

    page = browser(app, specialist).get(f"/consults/{consult.id}").text
    # One date format on the page; the relative time is the hover title.
    assert (f'<time datetime="{note.created_at.isoformat()}" title="3 hours ago">'
            'Mar 2, 2026, 9:00:00\u202fPM</time>') in page

    page = browser(app, clinician).get(f"/consults/{consult.id}").text
    assert (f'<time datetime="{note.created_at.isoformat()}" title="il y a 3 heures">'
            '2 mars 2026, 13:00:00</time>') in page


def test_switcher_stores_the_choice_in_the_profile(app, world):
    clinician = world["clinician"]
    client = browser(app, clinician)
    response = client.post("/language", data={"language": "ar", "next": "/consults/new"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/consults/new"
    db.session.refresh(clinician)
    assert clinician.locale == "ar"
    assert 'dir="rtl"' in client.get("/consults/new").text


def test_switcher_without_an_account_uses_the_session(app):
    client = browser(app, accept_language="fr")
    assert 'lang="fr"' in client.get("/login").text
    response = client.post("/language", data={"language": "sw", "next": "//evil.example/x"})
    assert response.headers["Location"] == "/"  # never to another site
    assert 'lang="sw"' in client.get("/login").text


def test_switcher_refuses_an_unknown_language(app, world):
    client = browser(app, world["clinician"])
    response = client.post("/language", data={"language": "xx", "next": "/"})
    assert response.status_code == 302
    page = client.get("/").text
    assert "This language is not available." in page
    db.session.refresh(world["clinician"])
    assert world["clinician"].locale != "xx"


def test_preferences_set_the_time_zone(app, world):
    specialist = world["specialist"]
    client = browser(app, specialist)
    response = client.post("/account/preferences",
                           data={"language": "es", "timezone": "America/Lima"})
    assert response.status_code == 302
    db.session.refresh(specialist)
    assert (specialist.locale, specialist.timezone) == ("es", "America/Lima")
    response = client.post("/account/preferences",
                           data={"language": "es", "timezone": "Mars/Olympus_Mons"})
    assert response.status_code == 400
    assert "has-error" in response.text  # the time zone field says what is wrong
    db.session.refresh(specialist)
    assert specialist.timezone == "America/Lima"


@pytest.mark.parametrize(("header", "expected"), [
    ("sw-KE,en;q=0.5", "sw"),
    ("fr-CD, en;q=0.8", "fr"),
    ("pt-BR,pt;q=0.9,en;q=0.5", "pt"),
    ("de-DE,ar;q=0.7,en;q=0.3", "ar"),
    ("de-DE", "en"),  # nothing we have: the deployment default
    ("", "en"),
])
def test_browser_language_matches_on_the_primary_subtag(app, header, expected):
    client = browser(app, accept_language=header)
    assert f'<html lang="{expected}"' in client.get("/login").text


def test_switcher_carries_a_csrf_token(app, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    client = browser(app, accept_language="fr")
    assert client.post("/language", data={"language": "ar"}).status_code == 400
    page = client.get("/login").text
    token = re.search(r'language-switcher.*?name="csrf_token" value="([^"]+)"', page, re.S)
    response = client.post("/language", data={"language": "ar", "next": "/login",
                                               "csrf_token": token.group(1)})
    assert response.status_code == 302
    assert 'dir="rtl"' in client.get("/login").text


def test_templates_follow_a_forced_locale_and_a_refresh(app):
    """Templates look the request's translations up once, yet a forced locale (a message in
    its recipient's language) and a refreshed one (a new choice) still change them."""
    from flask import render_template_string
    from flask_babel import force_locale, refresh

    with app.test_request_context("/", headers={"Accept-Language": "fr"}):
        assert render_template_string('{{ _("Sign in") }}') == "Se connecter"
        with force_locale("en"):
            assert render_template_string('{{ _("Sign in") }}') == "Sign in"
        assert render_template_string('{{ _("Sign in") }}') == "Se connecter"
        from flask import session

        session["locale"] = "en"
        refresh()
        assert render_template_string('{{ _("Sign in") }}') == "Sign in"
