"""Fixtures for surveillance: two countries with districts and boundaries, clinics, officers."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from telehealth import clock
from telehealth.accounts.models import Role, User
from telehealth.diagnoses.models import ConsultDiagnosis
from telehealth.extensions import db
from telehealth.places.services import create_area, import_geojson, place_clinic
from telehealth.surveillance.services import assign_officer, ensure_default_syndromes


def square(lon: float, lat: float, size: float = 1.0) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[lon, lat], [lon + size, lat],
                                                [lon + size, lat + size], [lon, lat + size],
                                                [lon, lat]]]}


def boundaries() -> str:
    features = [("CD-NK-GOMA", "Goma", "CD-NK", square(29.0, -2.0)),
                ("CD-NK-RUTS", "Rutshuru", "CD-NK", square(30.0, -2.0)),
                ("CD-NK-BENI", "Beni", "CD-NK", square(29.0, -1.0)),
                ("MZ-GZ-CHOK", "Chókwè", "MZ-GZ", square(33.0, -25.0))]
    return json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": code, "name": name, "parent": parent,
                                           "level": "district"}, "geometry": geometry}
        for code, name, parent, geometry in features]})


@pytest.fixture()
def surv(world: dict[str, Any], make_clinic: Callable[..., Any],
         make_user: Callable[..., Any]) -> dict[str, Any]:
    """DRC (North Kivu: Goma, Rutshuru, Beni) and Mozambique (Gaza: Chókwè); three clinics in
    Goma district (world's clinic is one), one in Chókwè; an officer for Goma (French, Kinshasa
    zone), one for Chókwè; the built-in syndromes."""
    drc = create_area("RD Congo", "CD", "country")
    kivu = create_area("Nord-Kivu", "CD-NK", "region", drc)
    mz = create_area("Moçambique", "MZ", "country")
    create_area("Gaza", "MZ-GZ", "region", mz)
    districts = {a.code: a for a in import_geojson(boundaries())}
    goma, chokwe = districts["CD-NK-GOMA"], districts["MZ-GZ-CHOK"]
    clinics = [world["clinic"], make_clinic("Goma Nord"), make_clinic("Goma Lac")]
    for clinic in clinics:
        place_clinic(clinic, goma)
    place_clinic(world["other_clinic"], chokwe)
    officer = make_user(Role.SURVEILLANCE_OFFICER, name="Dr Officer Goma", locale="fr",
                        timezone="Africa/Kinshasa")
    other_officer = make_user(Role.SURVEILLANCE_OFFICER, name="Dr Officer Chokwe", locale="pt")
    assign_officer(officer, goma)
    assign_officer(other_officer, chokwe)
    syndromes = {s.code: s for s in ensure_default_syndromes()}
    db.session.commit()
    clinicians = [world["clinician"]] + [make_user(Role.CLINICIAN, clinic=c) for c in clinics[1:]]
    return {**world, "drc": drc, "kivu": kivu, "mz": mz, "goma": goma, "chokwe": chokwe,
            "districts": districts, "clinics": clinics, "clinicians": clinicians,
            "officer": officer, "other_officer": other_officer, "syndromes": syndromes}


@pytest.fixture()
def coded(make_consult: Callable[..., Any]) -> Callable[..., Any]:
    """coded(clinician, codes, seen_at=None): a consult seen then, with these ICD-10 codes."""

    def make(clinician: User, codes: list[str], seen_at: datetime | None = None,
             coder: User | None = None, **kwargs: Any) -> Any:
        consult = make_consult(clinician, **kwargs)
        consult.created_at = seen_at or clock.now()
        for code in codes:
            db.session.add(ConsultDiagnosis(consult_id=consult.id, code=code,
                                            added_by_id=(coder or clinician).id))
        db.session.commit()
        return consult

    return make


def weeks_ago(n: int) -> datetime:
    return clock.now() - timedelta(weeks=n)
