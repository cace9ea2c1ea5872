"""Every form that asks for a time zone uses the same searchable, validated field."""

from __future__ import annotations

import re
from typing import Any

import pytest

from telehealth.extensions import db

BAD = "Mars/Olympus"
ERROR = "Unknown time zone; type a city and choose from the list."


def _invite_link(client: Any, auth: Any, coordinator: Any) -> str:
    auth.login(coordinator)
    response = client.post("/roster/invite", data={"email": "zone.doc@example.org"})
    link = response.text.split('<code id="invite-link">')[1].split("</code>")[0]
    auth.logout()
    return link.replace("http://localhost", "")


def zone_pages(client: Any, auth: Any, world: dict[str, Any]) -> list[tuple[str, str, dict]]:
    """(who, path, a valid form apart from the zone) for every page with a zone field."""
    clinician, specialist = world["clinician"], world["specialist"]
    signup = _invite_link(client, auth, world["coordinator"])
    specialty = str(specialist.specialties[0].id)
    return [
        ("specialist", "/account/preferences", {"language": "en"}),
        ("admin", "/admin/users/new", {"email": "z@example.org", "name": "Z",
                                       "password": "long enough pw", "role": "admin",
                                       "clinic": "", "locale": "en"}),
        ("admin", f"/admin/users/{clinician.id}", {"role": "clinician", "active": "y",
                                                   "clinic": str(clinician.clinic_id),
                                                   "locale": "fr"}),
        ("admin", "/admin/clinics/new", {"name": "Bukavu", "country": "CD",
                                         "languages": ["fr"]}),
        ("coordinator", "/conferences/new", {"topic": "TB", "languages": "fr",
                                             "weekday": "2", "start": "14:00",
                                             "duration_minutes": "90",
                                             "teaching_minutes": "20", "case_slots": "3",
                                             "certificate_percent": "80"}),
        ("coordinator", f"/roster/{specialist.id}", None),
        ("coordinator", f"/roster/{specialist.id}/profile", {
            "name": "Dr Zone", "specialties": [specialty], "languages": "fr:3",
            "capacity": "3", "availability": ""}),
        (None, signup, {"name": "Dr Zone", "password": "long enough pw",
                        "languages": "fr:3", "specialties": [specialty]}),
    ]


def test_every_zone_field_is_the_searchable_one(client, auth, world):
    for who, path, _form in zone_pages(client, auth, world):
        if path.endswith("/profile"):
            continue  # a POST-only address; its form is on the profile page
        if who:
            auth.login(world[who])
        page = client.get(path)
        assert page.status_code == 200, path
        fields = re.findall(r'<input[^>]*name="timezone"[^>]*>', page.text)
        assert fields, path
        for field in fields:
            assert 'data-zone-search="/api/timezones"' in field, path
            field_id = re.search(r'id="([^"]+)"', field).group(1)
            assert f'list="{field_id}-options"' in field, path
            assert f'<datalist id="{field_id}-options">' in page.text, path
        assert page.text.count("zones.js") == 1, path
        assert page.text.count("<option") < 60, path  # never the list of every zone
        if who:
            auth.logout()


def test_a_bad_zone_is_refused_with_a_clear_error_on_every_form(client, auth, world):
    for who, path, form in zone_pages(client, auth, world):
        if form is None:
            continue
        if who:
            auth.login(world[who])
        # An optional field (the administrator's repair form) takes blank as "keep it".
        blanks = ("   ",) if "/admin/users/" not in path or path.endswith("new") else ()
        for bad in (BAD, "../../etc/passwd", "x" * 200, *blanks):
            response = client.post(path, data={**form, "timezone": bad})
            assert response.status_code == 400, (path, bad, response.status_code)
            assert "has-error" in response.text, (path, bad)
        assert ERROR in client.post(path, data={**form, "timezone": BAD}).text, path
        if who:
            auth.logout()


def test_an_optional_zone_left_empty_keeps_the_stored_one(client, auth, world):
    clinician = world["clinician"]
    auth.login(world["admin"])
    response = client.post(f"/admin/users/{clinician.id}", data={
        "role": "clinician", "clinic": str(clinician.clinic_id), "active": "y",
        "timezone": "", "locale": ""})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(type(clinician), clinician.id).timezone == clinician.timezone


@pytest.mark.parametrize("zone", ["  Africa/Kinshasa  ", "Africa/Kinshasa"])
def test_a_zone_is_stored_stripped(client, auth, world, zone):
    specialist = world["specialist"]
    auth.login(specialist)
    response = client.post("/account/preferences", data={"language": "en", "timezone": zone})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(type(specialist), specialist.id).timezone == "Africa/Kinshasa"
