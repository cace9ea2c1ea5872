"""The demo world has two countries with districts, placed clinics and an officer each."""

from __future__ import annotations

from sqlalchemy import select

from telehealth.accounts.models import Role, User
from telehealth.clinics.models import Clinic
from telehealth.extensions import db
from telehealth.places.models import Area


def test_seed_demo_has_two_countries_with_districts(app) -> None:
    assert app.test_cli_runner().invoke(args=["seed-demo"]).exit_code == 0
    areas = list(db.session.scalars(select(Area)))
    assert sorted(a.code for a in areas if a.level == "country") == ["CD", "MZ"]
    assert len([a for a in areas if a.level == "district" and a.boundary]) == 6
    goma = db.session.scalar(select(Clinic).where(Clinic.city == "Goma"))
    assert goma.area_id == next(a.id for a in areas if a.name == "Goma")
    officers = db.session.scalars(select(User).where(User.role == Role.SURVEILLANCE_OFFICER))
    assert sorted(o.locale for o in officers) == ["fr", "pt"]
    result = app.test_cli_runner().invoke(args=["surveillance", "detect"])
    assert result.exit_code == 0 and "0 new alert(s)" in result.output
