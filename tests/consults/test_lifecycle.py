"""The consult lifecycle through the web pages, as the people involved would do it."""

from __future__ import annotations

import io

from telehealth.audit.models import AuditEvent
from telehealth.consults.models import Consult, ConsultStatus, Urgency
from telehealth.extensions import db
from telehealth.matching.models import Offer, OfferStatus
from tests.conftest import image_bytes


def _new_consult_form(**overrides):
    data = {
        "patient_ref": "GOMA-17",
        "patient_age_years": "7",
        "patient_sex": "male",
        "presenting_problem": "Fever and a rash for 5 days.",
        "history": "No travel.",
        "question": "Measles or something else?",
        "specialty": "",
        "urgency": "urgent",
        "mode": "written",
        "languages": ["fr", "en"],
        "submit": "Send",
    }
    data.update(overrides)
    return data


def test_full_story(client, auth, world):
    specialty_id = str(world["specialist"].specialties[0].id)
    auth.login(world["clinician"])
    form = _new_consult_form(specialty=specialty_id)
    form["attachments"] = [(io.BytesIO(image_bytes()), "rash.jpg")]
    response = client.post("/consults/new", data=form, content_type="multipart/form-data")
    assert response.status_code == 302, response.text
    consult = db.session.scalars(db.select(Consult)).one()
    assert consult.status == ConsultStatus.OFFERED
    assert len(consult.attachments) == 1
    auth.logout()

    # The cardiologist who speaks French sees the offer and takes it.
    auth.login(world["specialist"])
    page = client.get("/").text
    assert consult.reference in page
    assert client.post(f"/consults/{consult.id}/accept").status_code == 302
    response = client.post(
        f"/consults/{consult.id}/notes",
        data={"body": "Looks like measles. Give vitamin A.", "answer": "y"},
    )
    assert response.status_code == 302
    auth.logout()

    auth.login(world["clinician"])
    page = client.get(f"/consults/{consult.id}").text
    assert "Looks like measles" in page
    response = client.post(f"/consults/{consult.id}/close",
                           data={"outcome": "treated_locally", "outcome_note": "Recovered.",
                                 "rating": "5"})
    assert response.status_code == 302
    auth.logout()

    auth.login(world["specialist"])
    page = client.get(f"/consults/{consult.id}").text
    assert "treated locally" in page and "Recovered." in page
    db.session.refresh(consult)
    assert consult.status == ConsultStatus.CLOSED
    actions = {e.action for e in db.session.scalars(db.select(AuditEvent))}
    assert {"consult.created", "consult.status", "note.created", "attachment.created",
            "login.succeeded"} <= actions


def test_accept_is_refused_once_taken(client, auth, world, make_user, make_consult):
    second = make_user(specialties=("cardiology",), role=world["specialist"].role)
    # An emergency goes to several specialists at once (an urgent consult to one at a time).
    consult = make_consult(world["clinician"], urgency=Urgency.EMERGENCY)
    offers = db.session.scalars(db.select(Offer)).all()
    assert {o.specialist_id for o in offers} == {world["specialist"].id, second.id}
    auth.login(world["specialist"])
    assert client.post(f"/api/consults/{consult.id}/accept").status_code == 200
    auth.logout()
    auth.login(second)
    response = client.post(f"/api/consults/{consult.id}/accept")
    # The offer was withdrawn when the first specialist took the case.
    assert response.status_code in (404, 409)
    assert "error" in response.json
    statuses = {o.specialist_id: o.status for o in db.session.scalars(db.select(Offer))}
    assert statuses[second.id] == OfferStatus.WITHDRAWN
