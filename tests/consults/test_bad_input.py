"""Bad input gets a clear message and leaves what was saved untouched."""

from __future__ import annotations

import io
import os

import pytest

from telehealth.consults.models import Consult, ConsultStatus
from telehealth.extensions import db
from telehealth.notes.models import Note
from tests.conftest import image_bytes
from tests.consults.test_lifecycle import _new_consult_form


def _count(model) -> int:
    return db.session.scalar(db.select(db.func.count(model.id)))


def _uploaded_files(app) -> list[str]:
    folder = app.config["UPLOAD_DIR"]
    return os.listdir(folder) if os.path.isdir(folder) else []


@pytest.fixture()
def clinician_client(client, auth, world):
    auth.login(world["clinician"])
    return client


@pytest.fixture()
def specialty_id(world):
    return str(world["specialist"].specialties[0].id)


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("question", "This field is required."),
        ("presenting_problem", "This field is required."),
        ("patient_ref", "This field is required."),
        ("patient_age_years", "Give the age or an age band."),
        ("languages", "Choose at least one language."),
    ],
)
def test_missing_field(clinician_client, specialty_id, missing, message):
    form = _new_consult_form(specialty=specialty_id)
    form.pop(missing)
    response = clinician_client.post("/consults/new", data=form)
    assert response.status_code == 400
    assert message in response.text
    # What was typed is still there.
    if missing != "presenting_problem":
        assert "Fever and a rash for 5 days." in response.text
    assert _count(Consult) == 0


def test_oversized_file(app, clinician_client, specialty_id, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_ATTACHMENT_BYTES", 2048)
    form = _new_consult_form(specialty=specialty_id)
    form["attachments"] = [(io.BytesIO(image_bytes(size=(400, 400)) + b"\0" * 4096), "big.jpg")]
    response = clinician_client.post("/consults/new", data=form,
                                     content_type="multipart/form-data")
    assert response.status_code == 413
    assert "big.jpg is larger than the limit" in response.text
    assert "Fever and a rash" in response.text
    assert _count(Consult) == 0
    assert _uploaded_files(app) == []


def test_request_larger_than_the_limit(app, clinician_client, specialty_id, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 10_000)
    form = _new_consult_form(specialty=specialty_id)
    form["attachments"] = [(io.BytesIO(b"\xff\xd8\xff" + b"\0" * 20_000), "huge.jpg")]
    response = clinician_client.post("/consults/new", data=form,
                                     content_type="multipart/form-data")
    assert response.status_code == 413
    assert "The upload is too large." in response.text
    assert _count(Consult) == 0


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("photo.jpg", b"<html><script>alert(1)</script></html>"),
        ("scan.pdf", b"MZ\x90\x00 not a pdf"),
        ("photo.png", b"\x89PNG\r\n\x1a\n but not really a png"),
    ],
)
def test_file_content_decides_not_its_name(app, clinician_client, specialty_id, name, content):
    form = _new_consult_form(specialty=specialty_id)
    form["attachments"] = [(io.BytesIO(content), name)]
    response = clinician_client.post("/consults/new", data=form,
                                     content_type="multipart/form-data")
    assert response.status_code == 400
    assert name in response.text
    assert "not a JPEG, PNG or PDF file" in response.text or "not a valid image" in response.text
    assert _count(Consult) == 0
    assert _uploaded_files(app) == []


def test_forbidden_status_change_api(client, auth, world, make_consult):
    consult = make_consult(world["clinician"])
    auth.login(world["clinician"])
    response = client.post(f"/api/consults/{consult.id}/close", json={"outcome": "referred"})
    assert response.status_code == 409
    assert response.json["error"] == "A consult that is offered cannot become closed."
    db.session.expire_all()
    assert db.session.get(Consult, consult.id).status == ConsultStatus.OFFERED
    assert db.session.get(Consult, consult.id).outcome is None


def test_forbidden_status_change_page(client, auth, world, make_consult):
    consult = make_consult(world["clinician"])
    from telehealth.consults.services import cancel_consult

    cancel_consult(consult, world["clinician"])
    db.session.commit()
    auth.login(world["clinician"])
    response = client.post(f"/consults/{consult.id}/submit")
    assert response.status_code == 409
    assert "cancelled cannot become submitted" in response.text
    db.session.expire_all()
    assert db.session.get(Consult, consult.id).status == ConsultStatus.CANCELLED


def test_bad_outcome_is_refused(client, auth, world, make_consult):
    consult = make_consult(world["clinician"])
    auth.login(world["clinician"])
    response = client.post(f"/api/consults/{consult.id}/close", json={"outcome": "cured?"})
    assert response.status_code == 422  # the close form's rules, as on the page
    assert "Outcome" in response.json["error"]
    assert "outcome" in response.json["fields"]


def test_api_body_must_be_an_object(client, auth, world, make_consult):
    consult = make_consult(world["clinician"])
    auth.login(world["clinician"])
    response = client.post(f"/api/consults/{consult.id}/cancel", json=["x"])
    assert response.status_code == 400
    assert response.json["error"] == "The request body must be a JSON object."


def test_bad_file_on_a_note_keeps_the_text(app, client, auth, world, make_consult):
    from telehealth.matching.services import accept_consult

    consult = make_consult(world["clinician"])
    accept_consult(consult, world["specialist"])
    db.session.commit()
    auth.login(world["specialist"])
    response = client.post(
        f"/consults/{consult.id}/notes",
        data={"body": "My long careful answer.",
              "attachments": [(io.BytesIO(b"<svg onload=alert(1)>"), "chart.png")]},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "chart.png is not a JPEG, PNG or PDF file" in response.text
    assert "My long careful answer." in response.text
    assert _count(Note) == 0
    assert _uploaded_files(app) == []


def test_empty_note_is_refused(client, auth, world, make_consult):
    consult = make_consult(world["clinician"])
    auth.login(world["clinician"])
    response = client.post(f"/consults/{consult.id}/notes", data={"body": "   "})
    assert response.status_code == 400
    assert _count(Note) == 0


def test_unknown_pages_and_ids(client, auth, world):
    auth.login(world["clinician"])
    assert client.get("/consults/999999").status_code == 404
    assert client.get("/nowhere").status_code == 404
    assert client.get("/api/consults/999999").json["status"] == 404
