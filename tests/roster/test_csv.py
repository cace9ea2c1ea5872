"""Roster CSV: a file with errors imports nothing and names each bad line; 500 rows import."""

from __future__ import annotations

import csv
import io

from sqlalchemy import func, select

from telehealth.accounts.models import Role, User
from telehealth.extensions import db
from telehealth.roster.csvio import COLUMNS
from telehealth.roster.models import AvailabilityWindow, ProfileStatus, SpecialistProfile
from telehealth.roster.services import get_profile

ZONES = ["Europe/Paris", "America/Montreal", "Australia/Sydney", "Asia/Tokyo", "Africa/Nairobi"]


def _row(n: int, **overrides: str) -> dict[str, str]:
    row = {
        "email": f"doc{n}@example.org", "name": f"Dr {n}", "timezone": ZONES[n % len(ZONES)],
        "specialties": "cardiology dermatology" if n % 2 else "cardiology",
        "subspecialty": "", "languages": "fr:3 en:2", "capacity": "3", "status": "active",
        "availability": "mon 08:00-12:00; wed 14:00-18:00", "licence_number": f"L{n}",
        "licence_body": "Council", "licence_country": "FR", "licence_expires_on": "2027-06-30",
        "credential_status": "verified",
    }
    row.update(overrides)
    return row


def _csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _upload(client, data: bytes):
    return client.post("/roster/import", data={"file": (io.BytesIO(data), "roster.csv")},
                       content_type="multipart/form-data")


def _specialists() -> int:
    return db.session.scalar(select(func.count(User.id)).where(User.role == Role.SPECIALIST))


def test_one_bad_row_imports_nothing_and_names_the_line(client, auth, world, make_specialty):
    make_specialty("cardiology"), make_specialty("dermatology")
    before = _specialists()
    rows = [_row(n) for n in range(1, 6)]
    rows[2] = _row(3, timezone="Europe/Atlantis")  # line 4 (the header is line 1)
    auth.login(world["coordinator"])
    response = _upload(client, _csv(rows))
    assert response.status_code == 400
    assert "Nothing was imported" in response.text
    assert "Line 4: Europe/Atlantis is not a known time zone" in response.text
    assert "Line 2" not in response.text
    assert _specialists() == before


def test_every_bad_row_is_reported(client, auth, world, make_specialty):
    make_specialty("cardiology"), make_specialty("dermatology")
    rows = [_row(1, specialties="astrology"), _row(2, capacity="lots"), _row(3),
            _row(4, languages="french!"), _row(5, licence_expires_on="30/06/2027"),
            _row(3, name="duplicate"), _row(7, email=""), _row(8, status="retired")]
    auth.login(world["coordinator"])
    text = _upload(client, _csv(rows)).text
    for line, words in [(2, "unknown specialty astrology"), (3, "whole number"),
                        (5, "not a language code"), (6, "not a date"),
                        (7, "already on line 4"), (8, "column email is empty"),
                        (9, "unknown status")]:
        assert f"Line {line}: " in text and words in text, (line, words)
    assert _upload(client, b"name,timezone\nx,UTC\n").status_code == 400
    assert _upload(client, b"\xff\xfe\x00bad").status_code == 400


def test_500_good_rows_import_and_export_round_trips(client, auth, world, make_specialty):
    make_specialty("cardiology"), make_specialty("dermatology")
    before = _specialists()
    auth.login(world["coordinator"])
    response = _upload(client, _csv([_row(n) for n in range(1, 501)]))
    assert response.status_code == 302, response.text[:2000]
    assert _specialists() == before + 500
    doc = db.session.scalar(select(User).where(User.email == "doc7@example.org"))
    profile = get_profile(doc)
    assert profile.status == ProfileStatus.ACTIVE and doc.timezone == "Australia/Sydney"
    assert profile.verified_by_id == world["coordinator"].id
    assert [(w.weekday, w.start_minute) for w in profile.windows] == [(0, 480), (2, 840)]

    exported = client.get("/roster/export.csv")
    assert exported.mimetype == "text/csv"
    lines = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(lines) == before + 500
    mine = next(r for r in lines if r["email"] == "doc7@example.org")
    assert mine["availability"] == "mon 08:00-12:00; wed 14:00-18:00"
    assert mine["languages"] == "en:2 fr:3"
    # Importing the export again updates, creates nothing, and changes nothing.
    windows = db.session.scalar(select(func.count(AvailabilityWindow.id)))
    response = _upload(client, exported.data)
    assert response.status_code == 302
    assert _specialists() == before + 500
    assert db.session.scalar(select(func.count(AvailabilityWindow.id))) == windows
    assert db.session.scalar(select(func.count(SpecialistProfile.id))) == before + 500
