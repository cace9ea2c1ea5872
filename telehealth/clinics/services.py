"""Creating clinics."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select

from telehealth.audit.services import record
from telehealth.clinics.models import Clinic
from telehealth.errors import InvalidInput
from telehealth.extensions import db
from telehealth.validation import check_language, check_timezone


def create_clinic(
    *, name: str, country: str, city: str = "", timezone: str = "UTC", languages: list[str]
) -> Clinic:
    """Create a clinic; names are unique."""
    name = name.strip()
    if db.session.scalar(select(Clinic).where(Clinic.name == name)) is not None:
        raise InvalidInput(_("A clinic with this name already exists."))
    clinic = Clinic(
        name=name,
        country=country.upper(),
        city=city.strip(),
        timezone=check_timezone(timezone),
        languages=",".join(check_language(code) for code in languages),
    )
    db.session.add(clinic)
    db.session.flush()
    record("clinic.created", obj=clinic, name=name)
    return clinic


def all_clinics() -> list[Clinic]:
    return list(db.session.scalars(select(Clinic).order_by(Clinic.name)))
