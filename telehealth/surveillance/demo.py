"""Demo surveillance data: two countries with regions and districts, an officer per country."""

from __future__ import annotations

import json

from telehealth.accounts.models import Role, User
from telehealth.accounts.services import create_user
from telehealth.clinics.models import Clinic
from telehealth.places.models import Area
from telehealth.places.services import create_area, place_clinic
from telehealth.surveillance.services import assign_officer, ensure_default_syndromes

# (country, region, [(district code, name, west, south, east, north)]): rough boxes, enough
# for the bulletin's map.
DEMO_AREAS = [
    (("CD", "RD Congo"), ("CD-NK", "Nord-Kivu"), [
        ("CD-NK-GOM", "Goma", 29.1, -1.75, 29.35, -1.5),
        ("CD-NK-RUT", "Rutshuru", 29.1, -1.5, 29.6, -0.9),
        ("CD-NK-MAS", "Masisi", 28.7, -1.75, 29.1, -1.2)]),
    (("MZ", "Moçambique"), ("MZ-GZ", "Gaza"), [
        ("MZ-GZ-CHK", "Chókwè", 32.7, -24.8, 33.3, -24.3),
        ("MZ-GZ-XAI", "Xai-Xai", 33.3, -25.2, 33.9, -24.8),
        ("MZ-GZ-BIL", "Bilene", 33.0, -25.3, 33.3, -24.8)]),
]
# (e-mail, name, locale, time zone, region code)
DEMO_OFFICERS = [
    ("epi.kivu@example.org", "Dr Esther Mumbere", "fr", "Africa/Lubumbashi", "CD-NK"),
    ("epi.gaza@example.org", "Dr Paulo Cossa", "pt", "Africa/Maputo", "MZ-GZ"),
]


def seed_surveillance(clinics: list[Clinic], password: str) -> list[User]:
    """Areas, boundaries and officers; the Goma and Chókwè demo clinics placed in theirs."""
    districts: dict[str, Area] = {}
    regions: dict[str, Area] = {}
    for (country_code, country_name), (region_code, region_name), rows in DEMO_AREAS:
        country = create_area(country_name, country_code, "country")
        region = create_area(region_name, region_code, "region", country)
        regions[region_code] = region
        for code, name, west, south, east, north in rows:
            district = create_area(name, code, "district", region, (south + north) / 2,
                                   (west + east) / 2)
            district.boundary = json.dumps({"type": "Polygon", "coordinates": [[
                [west, south], [east, south], [east, north], [west, north], [west, south]]]})
            districts[name] = district
    for clinic in clinics:
        if clinic.city in districts:
            place_clinic(clinic, districts[clinic.city])
    ensure_default_syndromes()
    officers = []
    for email, name, locale, timezone, region_code in DEMO_OFFICERS:
        officer = create_user(email=email, name=name, password=password,
                              role=Role.SURVEILLANCE_OFFICER, timezone=timezone, locale=locale,
                              languages={locale: 3, "en": 2})
        assign_officer(officer, regions[region_code])
        officers.append(officer)
    return officers
