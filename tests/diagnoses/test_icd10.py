"""ICD-10 codes on a consult: searched by code or words, shown with titles to every reader."""

from __future__ import annotations

from telehealth.diagnoses import services
from telehealth.diagnoses.models import ConsultDiagnosis
from telehealth.extensions import db
from tests.conftest import take_consult
from tests.i18n.helpers import browser


def test_search_by_code_and_by_words():
    by_code = services.search("J18")
    assert by_code[0].display == "J18" and by_code[0].title == "Pneumonia, organism unspecified"
    assert "J18.9" in [c.display for c in by_code]
    assert [c.display for c in services.search("j18.9")] == ["J18.9"]
    words = services.search("malaria falciparum")
    assert words and all("falciparum" in c.title.lower() for c in words)
    assert services.search("") == []
    assert services.search("zzzz no such disease") == []
    assert services.lookup("A00-A09") is None  # a block, not a diagnosis
    assert services.lookup("B50.9").title == "Plasmodium falciparum malaria, unspecified"


def test_specialist_codes_the_consult_and_everyone_sees_it(app, world, make_consult):
    consult = make_consult(world["clinician"])
    take_consult(consult, world["specialist"])
    db.session.commit()
    specialist = browser(app, world["specialist"])
    page = specialist.get(f"/consults/{consult.id}/diagnoses?q=falciparum").text
    assert "B50.9" in page and "Add to the consult" in page
    response = specialist.post(f"/consults/{consult.id}/diagnoses", data={"code": "B509"})
    assert response.status_code == 302
    assert specialist.post(f"/consults/{consult.id}/diagnoses",
                           data={"code": "B50.9"}).status_code == 409
    assert specialist.post(f"/consults/{consult.id}/diagnoses",
                           data={"code": "NOPE"}).status_code == 400

    # Coded data crosses languages: the French clinician sees the same code and title.
    world["clinician"].locale = "fr"
    db.session.commit()
    page = browser(app, world["clinician"], "fr").get(f"/consults/{consult.id}").text
    assert "Diagnostics (CIM-10)" in page
    assert "B50.9" in page and "Plasmodium falciparum malaria, unspecified" in page
    assert "Retirer" not in page  # only the specialist on the case changes the codes
    assert browser(app, world["clinician"]).post(
        f"/consults/{consult.id}/diagnoses", data={"code": "A00"}).status_code == 403

    diagnosis = db.session.scalars(db.select(ConsultDiagnosis)).one()
    response = specialist.post(f"/consults/{consult.id}/diagnoses/{diagnosis.id}/remove")
    assert response.status_code == 302
    assert db.session.scalars(db.select(ConsultDiagnosis)).all() == []


def test_search_api_and_bad_queries(app, world):
    client = browser(app, world["specialist"])
    response = client.get("/api/icd10?q=cholera")
    assert response.status_code == 200
    assert {"code": "A00", "title": "Cholera"} in response.json
    response = client.get("/api/icd10?q=" + "x" * 101)
    assert response.status_code == 400 and "error" in response.json
